"""The decode service: video sources -> frames, streamed over gRPC."""
