"""Generated protobuf and gRPC code for our extension service. Do not edit by hand."""
