"""The WebSocket real-time features, test for test: connection management, log streaming, status updates,
metrics streaming, error handling and concurrent subscriptions, against a real controller whose agents run
Tests/websocket/log_app.py. Where a test would trigger "mock logs", the app writes them."""
import json
import time
from datetime import datetime

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as raw_connect

from harness import ISO_MILLIS_UTC, WANT, stamp

STATUSES_WHILE_STARTING = {"PENDING", "PROVISIONING", "RUNNING"}


def parse_time(text):
    assert ISO_MILLIS_UTC.match(text), f"timestamp {text!r} is not ISO 8601 UTC with milliseconds"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def instance_count(instances):
    # The contract names the field, not its shape: a count, or the list of instances.
    return len(instances) if isinstance(instances, list) else instances


def confirmed(socket, kind, deployment):
    data = socket.expect("subscription_confirmed", lambda d: d["deploymentId"] == deployment and d["type"] == kind)
    assert data == {"type": kind, "deploymentId": deployment}


# Connection management

def test_connects_with_a_valid_token(connect):
    socket = connect()
    socket.send("ping")
    socket.expect("pong", seconds=5)


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer invalid-token"}, {}], ids=["invalid", "missing"])
def test_rejects_a_connection_without_a_valid_token(controller, headers):
    with pytest.raises(InvalidStatus) as refused:
        raw_connect(controller.ws_url, additional_headers=headers, open_timeout=10)
    response = refused.value.response
    assert response.status_code == 401
    body = json.loads(response.body)
    assert body["success"] is False
    assert body["error"] == "Authentication failed"


def test_reconnects_after_a_disconnect(connect, chatty):
    first = connect()
    first.send("ping")
    first.expect("pong", seconds=5)
    first.close()
    time.sleep(0.1)
    second = connect()
    second.send("subscribe_logs", {"deploymentId": chatty})
    confirmed(second, "logs", chatty)
    assert second.expect("log_update", seconds=10)["deploymentId"] == chatty


# Deployment log streaming

def test_receives_real_time_log_updates_in_timestamp_order(connect, owner, chatty):
    instances = owner.running_instances(chatty)
    assert len(instances) == 2
    socket = connect()
    socket.send("subscribe_logs", {"deploymentId": chatty})
    confirmed(socket, "logs", chatty)
    # 40 lines/s between the two instances: 60 lines take about 1.5 s.
    lines = [socket.expect("log_update", seconds=10) for _ in range(60)]

    for line in lines:
        assert set(line) == {"deploymentId", "instanceId", "seq", "timestamp", "level", "stream", "message"}
        assert line["deploymentId"] == chatty
        assert line["instanceId"] in instances
        want = WANT.search(line["message"])
        assert want, f"a line log_app.py did not write: {line['message']!r}"
        assert (line["level"], line["stream"]) == (want.group(1), want.group(2)), line["message"]
    # Across instances, timestamps never go backwards within one subscription.
    times = [parse_time(line["timestamp"]) for line in lines]
    assert times == sorted(times)
    # Per instance, seq comes in order with nothing skipped, and so do the app's own counters.
    for instance in instances:
        mine = [line for line in lines if line["instanceId"] == instance]
        assert len(mine) >= 10
        seqs = [line["seq"] for line in mine]
        counters = [stamp(line["message"])[0] for line in mine]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert counters == list(range(counters[0], counters[0] + len(counters)))
    # Both shapes of each level arrived: a leading word, a JSON field, the stream's default.
    assert {(line["level"], line["stream"]) for line in lines} == {
        ("info", "stdout"), ("warn", "stdout"), ("error", "stderr"), ("error", "stdout"), ("debug", "stdout")}


def test_filters_logs_case_insensitively_on_the_server(connect, chatty):
    socket = connect()
    socket.send("subscribe_logs", {"deploymentId": chatty, "filter": "ERROR"})
    confirmed(socket, "logs", chatty)
    lines = [socket.expect("log_update", seconds=10) for _ in range(24)]
    for line in lines:
        assert "error" in line["message"].lower(), line["message"]
    # log_app.py's shapes 2 ("want=error" on stderr), 3 (a leading ERROR) and 4 ("Error:" mid-line) match;
    # the five others never do, so none of them may arrive.
    assert {stamp(line["message"])[0] % 8 for line in lines} == {2, 3, 4}


def test_unsubscribe_stops_log_updates(connect, chatty):
    socket = connect()
    socket.send("subscribe_logs", {"deploymentId": chatty})
    confirmed(socket, "logs", chatty)
    socket.expect("log_update", seconds=10)
    socket.expect("log_update", seconds=10)
    socket.send("unsubscribe_logs", {"deploymentId": chatty})
    socket.read_for(0.5)  # lines already on the wire when the server read the request
    after = socket.read_for(1.5)
    # The app kept writing 40 lines/s all along (about 60 in that time); none reached us.
    assert [event for _, event, _ in after if event == "log_update"] == []
    socket.send("ping")
    socket.expect("pong", seconds=5)


# Deployment status updates

def test_receives_status_change_notifications(connect, owner, make_deployment):
    deployment = make_deployment("--rate", 1, instances=0)
    socket = connect()
    socket.send("subscribe_status", {"deploymentId": deployment})
    confirmed(socket, "status", deployment)

    owner.scale(deployment, 1)
    running = socket.expect("status_update", lambda d: d["status"] == "RUNNING" and instance_count(d["instances"]) == 1,
                            seconds=30)
    owner.scale(deployment, 2)
    socket.expect("status_update", lambda d: d["status"] == "RUNNING" and instance_count(d["instances"]) == 2,
                  seconds=30)
    # The lifecycle: stop, start, destroy. The instance count is not checked here: after a stop the stopped
    # agents are counted until they go stale (test_stop_reports_no_instances).
    owner.call("POST", f"/api/deployments/{deployment}/stop", timeout=60)
    socket.expect("status_update", lambda d: d["status"] == "STOPPED", seconds=30)
    owner.call("POST", f"/api/deployments/{deployment}/start", timeout=60)
    socket.expect("status_update", lambda d: d["status"] == "RUNNING", seconds=30)
    owner.call("DELETE", f"/api/deployments/{deployment}", timeout=60)
    socket.expect("status_update", lambda d: d["status"] == "DESTROYED", seconds=30)

    updates = socket.events("status_update")
    for update in updates:
        assert set(update) == {"deploymentId", "status", "timestamp", "instances"}
        assert update["deploymentId"] == deployment
    times = [parse_time(update["timestamp"]) for update in updates]
    assert times == sorted(times)
    # Until it first runs, the deployment only passes through the starting states, in order.
    starting = [u["status"] for u in updates[:updates.index(running) + 1]]
    assert set(starting) <= STATUSES_WHILE_STARTING
    order = ["PENDING", "PROVISIONING", "RUNNING"]
    assert [order.index(s) for s in starting] == sorted(order.index(s) for s in starting)


def test_stop_reports_no_instances(connect, owner, make_deployment):
    deployment = make_deployment("--rate", 1, instances=1)
    socket = connect()
    socket.send("subscribe_status", {"deploymentId": deployment})
    socket.expect("status_update", lambda d: d["status"] == "RUNNING" and d["instances"] == 1, seconds=10)
    owner.call("POST", f"/api/deployments/{deployment}/stop", timeout=60)
    socket.expect("status_update", lambda d: d["status"] == "STOPPED" and d["instances"] == 0, seconds=5)


# Metrics streaming

def test_receives_real_time_performance_metrics(connect, make_deployment):
    deployment = make_deployment("--rate", 2, "--burn", instances=1)
    socket = connect()
    socket.send("subscribe_metrics", {"deploymentId": deployment})
    confirmed(socket, "metrics", deployment)
    updates, arrivals = [], []
    for _ in range(6):
        updates.append(socket.expect("metrics_update", seconds=5))
        arrivals.append(time.monotonic())
    for update in updates:
        assert set(update) == {"deploymentId", "timestamp", "metrics"}
        assert update["deploymentId"] == deployment
        parse_time(update["timestamp"])
        metrics = update["metrics"]
        assert set(metrics) >= {"cpu", "memory", "requests", "connections", "instances"}
        assert 0 <= metrics["cpu"] <= 100
        assert 0 <= metrics["memory"] <= 100
        assert metrics["instances"] == 1
    # The app burns between 0 and 30 % of its core over a 6 s cycle: the figures move.
    assert len({update["metrics"]["cpu"] for update in updates}) > 1
    # At least every 2 s while someone subscribes (0.5 s of slack for a busy 2-core test machine).
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert max(gaps) <= 2.5, gaps


# Error handling

def test_an_invalid_event_gets_an_error_and_the_connection_stays_open(connect):
    socket = connect()
    for frame in [json.dumps({"event": "invalid_event", "data": {"malformedData": True}}), "not json at all",
                  json.dumps({"data": {}}), json.dumps(["subscribe_logs", {}])]:
        socket.send_raw(frame)
        error = socket.expect("error", seconds=5)
        assert isinstance(error["message"], str) and error["message"] != ""
    socket.send("ping")
    socket.expect("pong", seconds=5)


@pytest.mark.parametrize("event", ["subscribe_logs", "subscribe_status", "subscribe_metrics"])
def test_subscription_to_a_non_existent_deployment(connect, event):
    socket = connect()
    socket.send(event, {"deploymentId": "non-existent-deployment"})
    error = socket.expect("subscription_error", seconds=5)
    assert error == {"deploymentId": "non-existent-deployment", "message": "Deployment not found"}


# Performance under load

def test_multiple_concurrent_subscriptions(connect, chatty, make_deployment):
    deployments = [chatty, make_deployment(instances=0), make_deployment(instances=0)]
    socket = connect()
    for deployment in deployments:
        for event in ["subscribe_logs", "subscribe_status", "subscribe_metrics"]:
            socket.send(event, {"deploymentId": deployment})
    got = [socket.expect("subscription_confirmed", seconds=5) for _ in range(9)]
    assert sorted((c["type"], c["deploymentId"]) for c in got) == sorted(
        (kind, d) for d in deployments for kind in ["logs", "status", "metrics"])
