"""The pure core: values in, values out. No network, no Kubernetes client, no gRPC, no files."""
