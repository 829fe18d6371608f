"""The wire: the generated protobuf/gRPC modules and what travels beside them.

``ledger_pb2``/``ledger_pb2_grpc`` (proto/ledger/v1/ledger.proto) are the clients' public
API; ``peer_pb2``/``peer_pb2_grpc`` (peer.proto) the validators' Peer service, which only
node/runtime imports, never the SDK (ADR 0020). ``node.wire.errors`` is the one mapping of
refusals to and from their structured details (google.rpc.Status)."""

__all__ = ["RETRY_AFTER_METADATA"]

# Trailing metadata of a Submit refused by admission control (RESOURCE_EXHAUSTED): how many
# milliseconds to wait before a retry may be admitted, in decimal (docs/cluster.md). The
# form before ADR 0020, still sent beside the status details' RetryInfo for older SDKs.
RETRY_AFTER_METADATA = "retry-after-ms"
