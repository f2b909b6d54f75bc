"""A simulator of Tracardi 0.8.0, 0.8.1 and 0.8.2.x on the real Elasticsearch: API, update-worker and GUI.

Modules: `versions` (resources per version, as data), `naming` (index/template/alias names), `settings`
(env and fault modes), `mappings` (our own small mappings), `install`, `migration` (listing, pure),
`transforms` (painless), `tasks` (the Elasticsearch-backed task queue), `api`, `worker`, `gui`,
`auth` (tokens), `es` (client). Run: `python -m devenv.simulator api|worker|gui --tag T --host H --port P`.
"""
