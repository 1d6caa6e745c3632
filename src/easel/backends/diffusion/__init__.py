"""The diffusers backend: options, pipeline families, loading, previews and tiny test pipelines."""
