"""RVA gateway: REST, WebSocket and GraphQL over the event stores, with auth, tenancy, rate limits and a dashboard.

Build the app with :func:`gateway.app.create_app`; run it with ``python -m gateway serve``.
"""
