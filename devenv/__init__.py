"""The local environment of tracardi-operator: a real Kubernetes control plane, a node agent,
Elasticsearch 7.10 and a Tracardi simulator, all on one machine without containers."""
