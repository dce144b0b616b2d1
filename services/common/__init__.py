"""What every service shares: config with env overrides, the gRPC runtime (health, reflection,
drain), metrics, tracing and logs, the JetStream work stream, frame encoding, server launchers."""
