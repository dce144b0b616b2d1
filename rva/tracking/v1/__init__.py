"""Generated protobuf modules (scripts/gen_protos.sh); never edit by hand."""
