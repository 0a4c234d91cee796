"""Gateway and console: HTTP/WebSocket ingress of calls, the web console, live feeds (docs/gateway.md)."""
