"""RVA's distributed services: each stage's pure core behind a thin gRPC/NATS adapter, one process each.

``python -m services.decode|inference|tracking|analytics --config FILE`` runs one service;
``python -m services up --config FILE`` runs the whole local stack (NATS, Triton, every service).
"""
