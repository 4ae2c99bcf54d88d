"""The admission webhook's HTTPS server: TLS that follows certificate rotation, the aiohttp
application that translates AdmissionReviews to and from the pure admission core, health and
Prometheus metrics."""
