"""The cluster analysis judges a canary only once it is Ready, and counts the window from then:
InferenceService statuses recorded from KServe's and Knative's source, in Knative mode (revisions) and in
Standard mode (`status.canaryStatuses`), read through the same function the analysis polls."""

from __future__ import annotations

import pytest

from inference.canary.readiness import canary_state, wait_for_canary
from inference.deploy.kserve_schema import sdk_problems
from tests.helpers.kserve_status import (
    SCENARIOS,
    STANDARD_FIXTURE,
    STANDARD_SCENARIOS,
    recorded_isvc,
    scenario,
)

# knative/serving pkg/apis/serving/v1/route_types.go `TrafficTarget` (commit 98e5ef90; KServe v0.20.0
# pins knative.dev/serving v0.48.1, whose fields are the same): the SDK ships no model for it.
TRAFFIC_TARGET_FIELDS = {"tag", "revisionName", "configurationName", "latestRevision", "percent", "url"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_recorded_statuses_fit_kserves_schema(name):
    for isvc in scenario(name):
        traffic = isvc["status"]["components"]["predictor"].pop("traffic")
        assert sdk_problems(isvc) == []
        assert all(set(target) <= TRAFFIC_TARGET_FIELDS for target in traffic)


def test_each_recorded_step_reads_as_the_rollout_it_is():
    stale, pending, ready = (canary_state(isvc) for isvc in scenario("becomes_ready"))
    assert (stale.ready, stale.detail) == (False, "status is for generation 1, the spec is 2")
    assert (pending.ready, pending.failed, pending.revision) == (
        False,
        False,
        "conversion-xgboost-predictor-00002",
    )
    assert ready.ready and ready.detail == ""
    failed = canary_state(scenario("fails")[-1])
    assert failed.failed and "RevisionFailed" in failed.detail and "Back-off pulling image" in failed.detail
    assert canary_state(None).detail == "the InferenceService does not exist"


def test_a_ready_revision_without_traffic_is_not_yet_a_canary():
    isvc = scenario("becomes_ready")[-1]
    for target in isvc["status"]["components"]["predictor"]["traffic"]:
        target["percent"] = 100 if target["tag"] == "prev" else 0
    assert canary_state(isvc).detail.endswith("is Ready but has no traffic yet")


def test_waiting_polls_until_ready():
    get, calls = recorded_isvc("becomes_ready")
    clock = FakeClock()
    state = wait_for_canary(get, timeout_s=600, poll_s=5, clock=clock, sleep=clock.sleep)
    assert state.ready and len(calls) == 3 and clock.slept == [5, 5]


def test_a_failed_revision_ends_the_wait_at_once():
    get, calls = recorded_isvc("fails")
    clock = FakeClock()
    state = wait_for_canary(get, timeout_s=600, poll_s=5, clock=clock, sleep=clock.sleep)
    assert state.failed and len(calls) == 2 and clock.now == 5


def test_a_revision_that_never_becomes_ready_times_out_naming_why():
    get, calls = recorded_isvc("never_ready")
    clock = FakeClock()
    state = wait_for_canary(get, timeout_s=60, poll_s=5, clock=clock, sleep=clock.sleep)
    assert not state.ready and not state.failed and clock.now == 60 and len(calls) == 13
    assert state.detail == (
        "not Ready within 60 s (revision conversion-xgboost-predictor-00002 is not Ready yet)"
    )


# ------------------------------------------------------------------------------------- Standard mode
@pytest.mark.parametrize("name", STANDARD_SCENARIOS)
def test_the_recorded_standard_statuses_fit_kserves_schema(name):
    assert all(sdk_problems(isvc) == [] for isvc in scenario(name, STANDARD_FIXTURE))


def test_a_standard_canary_is_ready_when_its_entry_is_ready_with_traffic():
    stale, pending, ready = (canary_state(i, "v2") for i in scenario("becomes_ready", STANDARD_FIXTURE))
    assert (stale.ready, stale.detail) == (False, "status is for generation 1, the spec is 2")
    assert (pending.ready, pending.failed, pending.detail) == (
        False,
        False,
        "canary predictor v2 is not Ready yet",
    )
    assert ready.ready and ready.revision == "v2"
    isvc = scenario("becomes_ready", STANDARD_FIXTURE)[-1]
    isvc["status"]["canaryStatuses"][0]["trafficPercent"] = 0  # a dark launch is no canary to judge
    assert canary_state(isvc, "v2").detail == "canary predictor v2 is Ready but has no traffic"
    # The entry named for another version (the spec moved on): never read as this canary.
    assert canary_state(isvc, "v3").detail == "spec.canary has no predictor v3 (it has ['v2'])"
    del isvc["status"]["canaryStatuses"]
    isvc["status"]["canaryStatuses"] = []
    assert canary_state(isvc, "v2").detail == "status.canaryStatuses has no v2 yet"


def test_waiting_for_a_standard_canary_polls_until_ready_or_times_out():
    get, calls = recorded_isvc("becomes_ready", STANDARD_FIXTURE)
    clock = FakeClock()
    state = wait_for_canary(get, 600, poll_s=5, clock=clock, sleep=clock.sleep, canary_name="v2")
    assert state.ready and len(calls) == 3 and clock.slept == [5, 5]
    get, calls = recorded_isvc("never_ready", STANDARD_FIXTURE)
    clock = FakeClock()
    state = wait_for_canary(get, 60, poll_s=5, clock=clock, sleep=clock.sleep, canary_name="v2")
    assert not state.ready and not state.failed and clock.now == 60
    assert state.detail == "not Ready within 60 s (canary predictor v2 is not Ready yet)"
