"""② PARSE: raw Kubernetes objects become typed, immutable records. Pure."""
