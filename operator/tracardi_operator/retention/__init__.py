"""Index retention: which superseded versions of an installation may go, and deleting exactly those.

The modules, pure unless said otherwise:
- `history`: the versions an installation has run, as the planner reads them, and the policies' rules.
- `selection`: which TracardiRetentionPolicy governs an installation (the highest priority; a tie: none).
- `evidence`: which (db version, tenant) pairs are live on a cluster, from every installation on it.
- `plan` and `decisions`: the plan (keep or delete, and why, per pair and per name) and its data.
- `safety`: the filter every plan leaves through, the request-line batches and the exact-name test.
- `headroom`: shards in use against the cluster's limit.
- `status`: what a run writes into the installation's status (a reducer).
- `inventory` (reads Elasticsearch): one inventory read per cluster and cycle, shared.
- `execution` (reads and deletes): a run: plan, publish, re-read the inputs, snapshot, delete, verify.
"""
