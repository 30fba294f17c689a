"""adapters/aws.py: one client per service and container, even when the first calls come from
several threads at once (an ingest batch's claims): boto3's default session is not thread-safe."""
import threading
import time

from usage_ledger.adapters import aws


def test_concurrent_first_calls_build_one_client(monkeypatch):
    built = []

    def slow_client(service, config=None):
        built.append(service)
        time.sleep(0.05)  # long enough for every other thread to arrive meanwhile
        return object()

    monkeypatch.setattr(aws.boto3, "client", slow_client)
    aws.reset_clients()
    try:
        start, found = threading.Barrier(8), []

        def first_call():
            start.wait()
            found.append(aws.client("dynamodb"))

        threads = [threading.Thread(target=first_call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert built == ["dynamodb"]
        assert len({id(client) for client in found}) == 1
    finally:
        aws.reset_clients()
