"""The opt-in batched log event: `subscribe_logs {..., batch: true}` gets `log_batch {deploymentId, lines: [...]}`
(each line the fields of a log_update), packed at most every 50 ms, with the order, resume, filter and drop rules of
per-line subscriptions; a subscriber that does not ask keeps `log_update`."""
import time

from harness import stamp

LINE_FIELDS = {"deploymentId", "instanceId", "seq", "timestamp", "level", "stream", "message"}


def flat(socket, deployment, since=0):
    """Every line of the socket's log_batch events for `deployment`, in arrival order."""
    lines = []
    for batch in socket.events("log_batch", since):
        assert set(batch) == {"deploymentId", "lines"} and batch["deploymentId"] == deployment
        assert batch["lines"], "an empty log_batch"
        lines.extend(batch["lines"])
    return lines


def by_instance(lines):
    out = {}
    for line in lines:
        out.setdefault(line["instanceId"], []).append(line)
    return out


def test_batched_and_plain_subscribers_of_one_deployment_and_a_resume(connect, owner, chatty):
    batched, plain = connect(), connect()
    batched.send("subscribe_logs", {"deploymentId": chatty, "batch": True, "tail": 100})
    plain.send("subscribe_logs", {"deploymentId": chatty})
    for socket in (batched, plain):
        assert socket.expect("subscription_confirmed", seconds=5) == {"type": "logs", "deploymentId": chatty}
    batched.read_for(2.5)
    plain.read_for(0.5)

    # The plain subscriber keeps the per-line contract; the batched one gets only batches.
    assert plain.events("log_batch") == [] and len(plain.events("log_update")) >= 10
    assert batched.events("log_update") == [] and batched.events("logs_dropped") == []
    lines = flat(batched, chatty)
    for line in lines:
        assert set(line) == LINE_FIELDS and line["deploymentId"] == chatty
    # Lines that wait together come packed (the tail, then the lines of each 50 ms while the app writes 40 a second).
    sizes = [len(batch["lines"]) for batch in batched.events("log_batch")]
    assert len(lines) >= 60 and len(sizes) < len(lines) and max(sizes) > 1, sizes
    # Timestamps never go backwards across batches; per instance, every line once, in order.
    assert [line["timestamp"] for line in lines] == sorted(line["timestamp"] for line in lines)
    before = by_instance(lines)
    assert set(before) == set(owner.running_instances(chatty))
    for instance, mine in before.items():
        seqs = [line["seq"] for line in mine]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{instance}: a seq skipped or repeated"
    batched.close()
    time.sleep(1)  # about 40 lines are written meanwhile

    resumed = connect()
    held = {instance: mine[-1]["seq"] for instance, mine in before.items()}
    resumed.send("subscribe_logs", {"deploymentId": chatty, "batch": True, "after": held})
    resumed.expect("subscription_confirmed", seconds=5)
    resumed.read_for(2)
    assert resumed.events("logs_dropped") == []
    after = by_instance(flat(resumed, chatty))
    assert set(after) == set(held)
    for instance, mine in after.items():
        seqs = [line["seq"] for line in mine]
        assert seqs == list(range(held[instance] + 1, held[instance] + 1 + len(seqs)))
        counters = [stamp(line["message"])[0] for line in before[instance] + mine]
        assert counters == list(range(counters[0], counters[0] + len(counters)))


def test_a_flood_comes_in_at_most_20_batches_a_second_with_every_line(connect, owner, make_deployment):
    deployment = make_deployment("--rate", 400, "--plain", instances=1)
    try:
        socket = connect()
        socket.send("subscribe_logs", {"deploymentId": deployment, "batch": True})
        socket.expect("subscription_confirmed", seconds=5)
        socket.read_for(0.5)  # the follower's start
        start = len(socket.frames)
        socket.read_for(2)
    finally:
        owner.scale(deployment, 0)
    batches = socket.events("log_batch", start)
    lines = flat(socket, deployment, start)
    # 400 lines/s would be up to 100 pages a second from the agent (one every 10 ms); 50 ms apart they are 40 frames
    # in 2 s (a frame already on its way when the window opened adds one).
    assert len(lines) >= 600
    assert len(batches) <= 41, f"{len(batches)} batches in 2 s"
    counters = [stamp(line["message"])[0] for line in lines]
    assert counters == list(range(counters[0], counters[0] + len(counters)))
    assert socket.events("logs_dropped", start) == []


def test_a_filter_applies_to_batched_lines(connect, chatty):
    socket = connect()
    socket.send("subscribe_logs", {"deploymentId": chatty, "filter": "ERROR", "batch": True})
    socket.expect("subscription_confirmed", seconds=5)
    deadline = time.monotonic() + 10
    while len(flat(socket, chatty)) < 24 and time.monotonic() < deadline:
        socket.read_for(0.5)
    lines = flat(socket, chatty)
    assert len(lines) >= 24
    # log_app.py's shapes 2, 3 and 4 hold "error" in some case; the five others never do.
    assert {stamp(line["message"])[0] % 8 for line in lines} == {2, 3, 4}


def test_a_bad_batch_flag_gets_an_error(connect, chatty):
    socket = connect()
    socket.send("subscribe_logs", {"deploymentId": chatty, "batch": "yes"})
    assert socket.expect("error", seconds=5) == {"message": "subscribe_logs: data.batch must be true or false"}
