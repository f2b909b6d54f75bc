"""tracardi-operator: runs Tracardi installations on Kubernetes and carries them from version to version.

The package is layered: pure decisions (models, versions, conditions, builders, plans) that take plain
data and return plain data, thin adapters that talk to Kubernetes, Elasticsearch and Tracardi, and kopf
handlers that connect the two.
"""

API_GROUP = "tracardi.com"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"
