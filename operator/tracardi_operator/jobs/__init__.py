"""The code the install and migration Jobs run (the operator's own image and program).

- `cli`: `tracardi-operator job install|migrate ...`, argument parsing and exit codes
- `install`, `migrate`: the two Jobs (I/O: Tracardi's API and Elasticsearch)
- `verify`: which source documents reached a readable destination (pure)
- `repair`: what Tracardi 0.8.2's migration skipped or mislaid and how to copy it (pure plan + executor)
- `transforms`: the 08x→0820 document transforms, as Python functions and as painless scripts
- `es`: a minimal Elasticsearch HTTP client configured from the Job's environment
- `common`: failures with reasons, termination message, structured logs, deadlines
"""
