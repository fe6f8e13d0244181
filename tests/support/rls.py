"""Envoy's rate limit service (``envoy.service.ratelimit.v3.RateLimitService``) as a real
gRPC server on 127.0.0.1, for stand-ins: a subclass says how it answers
(``should_rate_limit``), this serves it."""

from __future__ import annotations

from concurrent import futures

import grpc

from agentgw.policies import rls_proto as pb
from tests.support.harness import free_port


class RateLimitService:
    def __init__(self) -> None:
        self.port = free_port()
        self.server: grpc.Server | None = None

    def should_rate_limit(self, req: pb.RateLimitRequest, context) -> pb.RateLimitResponse:
        raise NotImplementedError

    def start(self) -> None:
        handler = grpc.method_handlers_generic_handler(
            "envoy.service.ratelimit.v3.RateLimitService",
            {
                "ShouldRateLimit": grpc.unary_unary_rpc_method_handler(
                    self.should_rate_limit,
                    request_deserializer=pb.RateLimitRequest.FromString,
                    response_serializer=pb.RateLimitResponse.SerializeToString,
                )
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(0).wait(5)
            self.server = None
