"""What every service shares.

Config with env overrides, the gRPC runtime (health, reflection, drain), metrics, tracing and logs,
the JetStream work stream, frame encoding, server launchers.
"""
