"""The Ray Serve mode (`easel serve --ray`): its settings (options), a model's queue in its Serve
replicas (remote), the model replica (replica), the Serve application (application), the
shared-state check (checks) and the Serve config YAML (config). Only `application` and the
replica's runtime import ray, and only when the Ray mode runs."""
