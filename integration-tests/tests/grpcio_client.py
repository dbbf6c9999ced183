"""Python's grpcio (from PyPI, default channel options) against
berth-lifecycled's unix socket: what a person with only the socket path and
generic gRPC tooling does. No stubs are generated from berth's protos: the
messages come from the server's own reflection, as grpcurl's do.

argv[1] is the socket path. argv[2], if given, is sent as :authority (the
raw socket path is what grpc-java and older grpc-go send; without it,
grpcio sends its own default, the percent-encoded path)."""

import sys
import threading

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

NS = [("berth-namespace", "grpcio")]


def main():
    sock = sys.argv[1]
    options = [("grpc.default_authority", sys.argv[2])] if len(sys.argv) > 2 else []
    channel = grpc.insecure_channel("unix://" + sock, options=options)

    # Health, as probes do it.
    health = health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING, status
    print("health SERVING")

    # Reflection: the list of services.
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = refl.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    names = sorted(s.name for a in answers for s in a.list_services_response.service)
    print("services " + " ".join(names))

    # Messages built from the server's descriptors.
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))

    def method(service, name):
        m = pool.FindServiceByName(service).FindMethodByName(name)
        req = message_factory.GetMessageClass(m.input_type)
        resp = message_factory.GetMessageClass(m.output_type)
        path = "/%s/%s" % (service, name)
        make = channel.unary_stream if m.server_streaming else channel.unary_unary
        call = make(path, request_serializer=req.SerializeToString,
                    response_deserializer=resp.FromString)
        return req, call

    # A unary call.
    req, version = method("berth.lifecycle.v1.Version", "Version")
    v = version(req(), timeout=10)
    print("version runtimes " + " ".join(sorted(v.runtimes)))

    # A server stream: events while a container is created and deleted.
    req, subscribe = method("berth.lifecycle.v1.Events", "Subscribe")
    stream = subscribe(req(filters=["namespace==grpcio"]), metadata=NS, timeout=20)
    topics = []
    got_both = threading.Event()

    def read():
        for envelope in stream:
            topics.append(envelope.topic)
            if len(topics) == 2:
                got_both.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    create_req, create = method("berth.lifecycle.v1.Containers", "Create")
    container = create_req.DESCRIPTOR.fields_by_name["container"].message_type
    spec = b'{"process":{"args":["true"]},"root":{"path":"/nonexistent"}}'
    delete_req, delete = method("berth.lifecycle.v1.Containers", "Delete")
    # The subscription is live once the server has it; retry the pair until
    # its events arrive rather than guessing a delay.
    for attempt in range(50):
        c = message_factory.GetMessageClass(container)(id="py%d" % attempt, spec=spec)
        create(create_req(container=c), metadata=NS, timeout=10)
        delete(delete_req(id=c.id), metadata=NS, timeout=10)
        if got_both.wait(0.2):
            break
    assert got_both.is_set(), topics
    stream.cancel()
    print("events " + " ".join(topics))


if __name__ == "__main__":
    main()
