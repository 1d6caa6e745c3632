"""HTTP routers: thin layers that parse, call the service and respond."""
