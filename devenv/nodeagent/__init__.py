"""The devenv node agent: what a kubelet (or kwok) would be for one Node, without containers.

    python -m devenv.nodeagent --kubeconfig .devenv/kubeconfig --state-dir .devenv --node-name devenv

It registers the Node (Ready, capacity 32 CPU / 64Gi / 250 pods, InternalIP 127.0.0.1) and renews its
Lease every 10 s (`node`), binds unscheduled pods of the default scheduler to it when nodeSelector and
taints allow (`agent.Binder`), and runs the pods bound to it, one thread per pod (`pods`):

- image `*/tracardi-operator[:tag]` built here (buildah has it; `make image`): from the image's root
  filesystem (`images`, `chroot`): overlay, chroot, the container's UID/GID, the image's
  ENTRYPOINT/CMD/Env/WorkingDir with the container's command/args/env, the ServiceAccount token at
  /var/run/secrets/kubernetes.io/serviceaccount, emptyDir volumes, read-only root when asked;
- the same image not built here: the container's command+args (args alone go to the
  `tracardi-operator` entrypoint) as a local process, cwd = the repository, PATH with `.venv/bin` first;
- `tracardi/tracardi-api|update-worker|tracardi-gui`: `python -m devenv.simulator <role> --tag <tag>
  --host <podIP> --port <first containerPort or 80>` (while `devenv/simulator/__main__.py` exists);
- any other image: Running and Ready, no process.

Decisions:
- Addresses: each pod gets its own loopback address from 127.0.1.1 upward (127.0.0.0/24 and .0/.255
  skipped), round-robin so a freed address is not reused at once; an address is held while the pod is
  not terminal and kept across agent restarts (the pod's status.podIP). Linux routes all of 127/8 to `lo`.
- Env: only the pod's env (literal, secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef, envFrom,
  `$(VAR)` expansion) on a small container-like base (PATH, HOME, HOSTNAME, LANG, PYTHONUNBUFFERED,
  KUBERNETES_SERVICE_HOST/PORT of the apiserver); the agent's own environment (KUBECONFIG) is not
  inherited. A missing secret/configmap leaves the container waiting (CreateContainerConfigError), retried.
- ServiceAccount token: unless automountServiceAccountToken is false the agent writes `token`
  (TokenRequest bound to the pod, 1 h, refreshed at 80 %), `ca.crt` and `namespace` (mode 0644) into
  `.devenv/pods/<ns>_<pod>.serviceaccount/`: bind-mounted at /var/run/secrets/kubernetes.io/serviceaccount
  for a container from an image; named by TRACARDI_OPERATOR_SA_DIR for a local process (/var/run/secrets
  cannot be per process).
- Output: `.devenv/pods/<ns>_<pod>_<container>.log`, appended per run after a `---` header line; the
  terminated state's message is `output: <file>` plus, on failure, the last lines. `kubectl logs`
  (also --previous, --tail, -f) is served over HTTPS on the port in daemonEndpoints (`logs`).
- Exit codes: 0 → Completed, else Error; restartPolicy decides restart (back-off 2 s doubling to 60 s,
  CrashLoopBackOff) or a terminal phase. A probe-less process is ready while it runs; readiness,
  liveness and startup probes (httpGet, tcpSocket, exec) run against the podIP.
- Deletion: a pod with a deletionTimestamp has its process group stopped (SIGTERM, SIGKILL after its
  grace period capped at 5 s), its final status posted, and is deleted with grace period 0.
- Agent restart: pid files (`*.pid` next to the logs, with the process start time and the node name) let
  a new agent kill what the previous one left. A process container that was running then counts as
  terminated with 137 (ContainerStatusUnknown): Never pods fail (their Job replaces them), others start
  afresh with restartCount + 1. Process-less containers simply continue. On SIGTERM the agent stops all
  pod processes and leaves the pods in the API for the next agent.

Modules: `rules` (pure decisions, unit tested), `kube` (the only API calls), `runtime` (processes, pid
files, probes), `images` (buildah's images and their unpacked root filesystems), `chroot` (starts one
container from a root filesystem), `pods` (the per-pod worker), `node`, `logs`, `agent` (wiring,
watches, shutdown).
"""
