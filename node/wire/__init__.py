"""The client API's wire: the generated protobuf/gRPC modules (``ledger_pb2``,
``ledger_pb2_grpc``, from proto/ledger/v1/ledger.proto) and what travels beside them."""

__all__ = ["RETRY_AFTER_METADATA"]

# Trailing metadata of a Submit refused by admission control (RESOURCE_EXHAUSTED): how many
# milliseconds to wait before a retry may be admitted, in decimal (docs/cluster.md).
RETRY_AFTER_METADATA = "retry-after-ms"
