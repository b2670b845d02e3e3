"""The real Dagster processes for end-to-end tests: ``dagster-daemon run`` and the webserver.

:class:`DagsterServices` starts both as separate processes (not ``dagster dev``), each in a
process group of its own (``start_new_session=True``), with a temporary ``DAGSTER_HOME``
holding a copy of an instance file (the repo's ``dagster.yaml`` or
``deploy/dagster.postgres.yaml``) and the ``MAIL_PIPELINE_*`` variables the code location
reads. Their output (and that of the code servers and run workers they spawn, which inherit
it) goes to ``daemon.log`` and ``webserver.log`` beside the instance; the tails are printed when
a test fails and included in every polling timeout's message.

The instance's storage is created first by ``dagster instance migrate`` (see
:meth:`DagsterServices.migrate`), as an operator would before starting both services.

Stopping: SIGTERM to each process group, SIGKILL after a grace period, then a sweep of any
process that still carries this rig's marker variable in its environment (a run worker or code
server that left the group), killed by PID.

:class:`DagsterApi` is the GraphQL side: the public ``DagsterGraphQLClient`` where it has the
call (launching a job, a run's status), raw GraphQL over ``requests`` for the rest (sensors,
schedules, partitions, backfills, re-execution).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from dagster_graphql import DagsterGraphQLClient

from mail_pipeline_tests.fixtures.servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = REPO_ROOT / "workspace.yaml"
EMBEDDED_INSTANCE = REPO_ROOT / "dagster.yaml"
POSTGRES_INSTANCE = REPO_ROOT / "deploy" / "dagster.postgres.yaml"
VENV_BIN = Path(sys.executable).parent

LOCATION = "mail_pipeline"
REPOSITORY = "__repository__"
MARKER_VAR = "MAIL_PIPELINE_E2E_RIG"

TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})

T = TypeVar("T")


class ServicesError(AssertionError):
    """A Dagster process died, did not come up, or a GraphQL call failed."""


# --- GraphQL --------------------------------------------------------------------------------

_RUN_FIELDS = """
    runId status jobName parentRunId rootRunId stepKeysToExecute
    tags { key value }
    stepStats { stepKey status }
"""


def _repo() -> dict[str, str]:
    return {"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION}


class DagsterApi:
    """GraphQL calls against one webserver (``http://127.0.0.1:<port>``)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.base_url = f"http://{host}:{port}"
        self._client: DagsterGraphQLClient | None = None

    @property
    def client(self) -> DagsterGraphQLClient:
        """The public dagster_graphql client (created on first use: it reads the schema)."""
        if self._client is None:
            self._client = DagsterGraphQLClient(self.host, port_number=self.port, timeout=60)
        return self._client

    # --- plumbing ---

    def server_info_ok(self) -> bool:
        """True when ``/server_info`` answers 200."""
        try:
            return requests.get(f"{self.base_url}/server_info", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def query(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run a GraphQL query or mutation; return ``data`` (raise on transport or GQL errors)."""
        response = requests.post(
            f"{self.base_url}/graphql",
            json={"query": query, "variables": dict(variables or {})},
            timeout=120,
        )
        if response.status_code != 200:
            raise ServicesError(f"GraphQL HTTP {response.status_code}: {response.text[:2000]}")
        body = response.json()
        if body.get("errors"):
            raise ServicesError(f"GraphQL errors: {body['errors']}")
        data: dict[str, Any] = body["data"]
        return data

    @staticmethod
    def _ok(result: dict[str, Any], typename: str) -> dict[str, Any]:
        if result.get("__typename") != typename:
            raise ServicesError(f"expected {typename}, got {result}")
        return result

    # --- readiness ---

    def location_problem(self) -> str | None:
        """None when the code location is loaded with its repository; else what is wrong."""
        data = self.query("""
            query {
              workspaceOrError {
                __typename
                ... on Workspace {
                  locationEntries {
                    name loadStatus
                    locationOrLoadError {
                      __typename
                      ... on RepositoryLocation { repositories { name } }
                      ... on PythonError { message }
                    }
                  }
                }
                ... on PythonError { message }
              }
            }""")["workspaceOrError"]
        if data["__typename"] != "Workspace":
            return f"workspace: {data}"
        entries = {e["name"]: e for e in data["locationEntries"]}
        entry = entries.get(LOCATION)
        if entry is None:
            return f"no location {LOCATION!r} (have {sorted(entries)})"
        loaded = entry["locationOrLoadError"]
        if entry["loadStatus"] != "LOADED" or loaded is None:
            return f"location {LOCATION} is {entry['loadStatus']}"
        if loaded["__typename"] == "PythonError":
            raise ServicesError(f"code location failed to load: {loaded['message']}")
        repos = self.query(
            "query { repositoriesOrError { __typename "
            "... on RepositoryConnection { nodes { name location { name } } } } }"
        )
        names = {
            (r["location"]["name"], r["name"])
            for r in repos["repositoriesOrError"].get("nodes", [])
        }
        if (LOCATION, REPOSITORY) not in names:
            return f"repository not listed yet ({sorted(names)})"
        return None

    def daemon_problem(self) -> str | None:
        """None when every required daemon has a healthy heartbeat; else which are not."""
        data = self.query("""
            query { instance { daemonHealth { allDaemonStatuses {
              daemonType required healthy lastHeartbeatErrors { message } } } } }""")
        statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
        bad = [
            f"{s['daemonType']}"
            + (
                f" ({s['lastHeartbeatErrors'][0]['message'][:200]})"
                if s["lastHeartbeatErrors"]
                else ""
            )
            for s in statuses
            if s["required"] and not s["healthy"]
        ]
        return f"daemons not healthy: {', '.join(bad)}" if bad else None

    # --- runs ---

    def launch_run(self, job_name: str, tags: Mapping[str, str] | None = None) -> str:
        """Launch ``job_name`` (public client); return the run id."""
        return self.client.submit_job_execution(
            job_name,
            repository_location_name=LOCATION,
            repository_name=REPOSITORY,
            tags=dict(tags or {}),
        )

    def run_status(self, run_id: str) -> str:
        """The run's status name (public client)."""
        return self.client.get_run_status(run_id).value

    def run(self, run_id: str) -> dict[str, Any]:
        """The run's status, lineage, tags (as a dict) and step stats."""
        data = self.query(
            f"""
            query($runId: ID!) {{ runOrError(runId: $runId) {{
              __typename ... on Run {{ {_RUN_FIELDS} }} ... on PythonError {{ message }} }} }}""",
            {"runId": run_id},
        )
        run = self._ok(data["runOrError"], "Run")
        run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
        run["steps"] = {s["stepKey"]: s["status"] for s in run["stepStats"]}
        return run

    def runs(self, job_name: str, statuses: list[str] | None = None) -> list[dict[str, Any]]:
        """Runs of ``job_name`` (newest first), optionally only those in ``statuses``."""
        flt: dict[str, Any] = {"pipelineName": job_name}
        if statuses:
            flt["statuses"] = statuses
        data = self.query(
            f"""
            query($filter: RunsFilter) {{ runsOrError(filter: $filter) {{
              __typename ... on Runs {{ results {{ {_RUN_FIELDS} }} }} }} }}""",
            {"filter": flt},
        )
        runs: list[dict[str, Any]] = self._ok(data["runsOrError"], "Runs")["results"]
        for run in runs:
            run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
        return runs

    def reexecute(self, parent_run_id: str, strategy: str = "FROM_FAILURE") -> str:
        """``launchRunReexecution`` of ``parent_run_id``; return the new run's id."""
        data = self.query(
            """
            mutation($params: ReexecutionParams) {
              launchRunReexecution(reexecutionParams: $params) {
                __typename
                ... on LaunchRunSuccess { run { runId } }
                ... on Error { message }
                ... on PythonError { message }
              }
            }""",
            {"params": {"parentRunId": parent_run_id, "strategy": strategy}},
        )
        result = self._ok(data["launchRunReexecution"], "LaunchRunSuccess")
        run_id: str = result["run"]["runId"]
        return run_id

    # --- backfills and partitions ---

    def launch_backfill(
        self, partition_set: str, partition_names: list[str], *, from_failure: bool = False
    ) -> str:
        """``launchPartitionBackfill`` of ``partition_names``; return the backfill id."""
        data = self.query(
            """
            mutation($params: LaunchBackfillParams!) {
              launchPartitionBackfill(backfillParams: $params) {
                __typename
                ... on LaunchBackfillSuccess { backfillId }
                ... on Error { message }
                ... on PythonError { message }
              }
            }""",
            {
                "params": {
                    "selector": {"partitionSetName": partition_set, "repositorySelector": _repo()},
                    "partitionNames": partition_names,
                    "fromFailure": from_failure,
                }
            },
        )
        result = self._ok(data["launchPartitionBackfill"], "LaunchBackfillSuccess")
        backfill_id: str = result["backfillId"]
        return backfill_id

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        """The backfill's status, partitions, error and runs."""
        data = self.query(
            f"""
            query($id: String!) {{ partitionBackfillOrError(backfillId: $id) {{
              __typename
              ... on PartitionBackfill {{
                id status fromFailure partitionNames error {{ message }}
                runs {{ {_RUN_FIELDS} }}
              }}
              ... on PythonError {{ message }}
            }} }}""",
            {"id": backfill_id},
        )
        backfill = self._ok(data["partitionBackfillOrError"], "PartitionBackfill")
        for run in backfill["runs"]:
            run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
        return backfill

    def partition_keys(self, job_name: str) -> list[str]:
        """The job's partition keys (for a dynamic partitions job: those added so far)."""
        data = self.query(
            """
            query($params: PipelineSelector!) { pipelineOrError(params: $params) {
              __typename ... on Pipeline { partitionKeysOrError { partitionKeys } } } }""",
            {"params": {"pipelineName": job_name, **_repo()}},
        )
        job = self._ok(data["pipelineOrError"], "Pipeline")
        keys: list[str] = job["partitionKeysOrError"]["partitionKeys"]
        return keys

    def partition_tags(self, job_name: str, partition: str) -> dict[str, str]:
        """The tags the UI's launchpad puts on a run of ``partition`` of ``job_name``."""
        data = self.query(
            """
            query($params: PipelineSelector!, $name: String!) {
              pipelineOrError(params: $params) { __typename ... on Pipeline {
                partition(partitionName: $name) { tagsOrError { __typename
                  ... on PartitionTags { results { key value } }
                  ... on PythonError { message } } } } } }""",
            {"params": {"pipelineName": job_name, **_repo()}, "name": partition},
        )
        job = self._ok(data["pipelineOrError"], "Pipeline")
        tags = self._ok(job["partition"]["tagsOrError"], "PartitionTags")
        return {t["key"]: t["value"] for t in tags["results"]}

    # --- schedules and sensors ---

    def sensor_state(self, name: str) -> dict[str, Any]:
        """The sensor's ``sensorState`` (id, selectorId, status) and its origin id."""
        data = self.query(
            """
            query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
              __typename ... on Sensor { jobOriginId sensorState { id selectorId status } }
              ... on PythonError { message } } }""",
            {"selector": {"sensorName": name, **_repo()}},
        )
        sensor = self._ok(data["sensorOrError"], "Sensor")
        state: dict[str, Any] = sensor["sensorState"]
        state["jobOriginId"] = sensor["jobOriginId"]
        return state

    def stop_sensor(self, name: str) -> str:
        """Stop the sensor (as the UI's toggle does); return its new status."""
        state = self.sensor_state(name)
        data = self.query(
            """
            mutation($origin: String, $selector: String) {
              stopSensor(jobOriginId: $origin, jobSelectorId: $selector) {
                __typename ... on StopSensorMutationResult { instigationState { status } }
                ... on PythonError { message } } }""",
            {"origin": state["jobOriginId"], "selector": state["selectorId"]},
        )
        result = self._ok(data["stopSensor"], "StopSensorMutationResult")
        status: str = result["instigationState"]["status"]
        return status

    def schedule_state(self, name: str) -> str:
        """The schedule's status (RUNNING or STOPPED)."""
        data = self.query(
            """
            query($selector: ScheduleSelector!) { scheduleOrError(scheduleSelector: $selector) {
              __typename ... on Schedule { scheduleState { status } }
              ... on PythonError { message } } }""",
            {"selector": {"scheduleName": name, **_repo()}},
        )
        status: str = self._ok(data["scheduleOrError"], "Schedule")["scheduleState"]["status"]
        return status

    def schedule_dry_run(self, name: str) -> dict[str, Any]:
        """Evaluate the schedule now in the code location (``scheduleDryRun``); each run
        request's tags as a dict."""
        data = self.query(
            """
            mutation($selector: ScheduleSelector!, $timestamp: Float) {
              scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {
              __typename
              ... on DryRunInstigationTick { evaluationResult {
                skipReason error { message } runRequests { runKey tags { key value } } } }
              ... on PythonError { message } } }""",
            {"selector": {"scheduleName": name, **_repo()}, "timestamp": time.time()},
        )
        tick = self._ok(data["scheduleDryRun"], "DryRunInstigationTick")
        result: dict[str, Any] = tick["evaluationResult"]
        for request in result.get("runRequests") or []:
            request["tags"] = {t["key"]: t["value"] for t in request["tags"]}
        return result


# --- polling --------------------------------------------------------------------------------


def wait_for(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    interval: float = 1.0,
    context: Callable[[], str] | None = None,
) -> T:
    """Poll ``check`` until it returns something truthy and return it.

    After ``timeout`` seconds fail with ``what``, the last value seen and ``context()`` (the
    processes' log tails).
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            extra = f"\n{context()}" if context else ""
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r}){extra}"
            )
        time.sleep(interval)


# --- the processes ----------------------------------------------------------------------------


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def processes_with_marker(token: str) -> list[int]:
    """PIDs of live processes whose environment carries ``MAIL_PIPELINE_E2E_RIG=token``."""
    needle = f"{MARKER_VAR}={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


def _scrubbed_environ() -> dict[str, str]:
    """This process's environment without any DAGSTER_* / MAIL_PIPELINE_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MAIL_PIPELINE_"))}


class DagsterServices:
    """``dagster-daemon run`` and ``dagster-webserver`` over a temporary ``DAGSTER_HOME``."""

    def __init__(self, root: Path, instance_yaml: Path, env: Mapping[str, str]) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.dagster_home = root / "dagster_home"
        self.dagster_home.mkdir(exist_ok=True)
        shutil.copyfile(instance_yaml, self.dagster_home / "dagster.yaml")
        self.instance_yaml = instance_yaml
        self.port = free_port()
        self.token = secrets.token_hex(8)
        self.env = {
            **_scrubbed_environ(),
            **env,
            "DAGSTER_HOME": str(self.dagster_home),
            MARKER_VAR: self.token,
            "PYTHONUNBUFFERED": "1",
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.api = DagsterApi(self.port)

    def log_path(self, name: str) -> Path:
        """Where the output of process ``name`` (daemon, webserver) goes."""
        return self.root / f"{name}.log"

    def _spawn(self, name: str, argv: list[str]) -> None:
        with open(self.log_path(name), "ab") as log:
            self.procs[name] = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def migrate(self, timeout: float = 180.0) -> None:
        """Create the instance's storage once, before the services start.

        A fresh instance is otherwise created by four processes at once (daemon, webserver
        and their code servers): on SQLite that can stamp Dagster's ``alembic_version`` twice
        and every later start then fails with "more than one head present" (seen here).
        ``dagster dev`` avoids it by opening the instance in its parent first.
        """
        with open(self.log_path("migrate"), "wb") as log:
            result = subprocess.run(
                [str(VENV_BIN / "dagster"), "instance", "migrate"],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if result.returncode != 0:
            raise ServicesError(
                f"dagster instance migrate failed ({result.returncode}):\n"
                f"{_tail(self.log_path('migrate'), 60)}"
            )

    def start(self, timeout: float = 240.0) -> None:
        """Migrate, start the daemon and the webserver; return when both are up."""
        self.migrate()
        self._spawn("daemon", [str(VENV_BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)])
        self._spawn(
            "webserver",
            [
                str(VENV_BIN / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-w",
                str(WORKSPACE),
            ],
        )
        self.wait_for(
            self.api.server_info_ok, timeout, "the webserver's /server_info", interval=0.5
        )
        self.wait_for(
            lambda: self.api.location_problem() is None,
            timeout,
            "the code location in repositoriesOrError",
        )
        self.wait_for(
            lambda: self.api.daemon_problem() is None, timeout, "healthy daemon heartbeats"
        )

    def check_alive(self) -> None:
        """Fail with the logs when the daemon or the webserver has exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise ServicesError(
                    f"dagster {name} exited with {proc.returncode}\n{self.diagnostics()}"
                )

    def wait_for(
        self, check: Callable[[], T | None], timeout: float, what: str, *, interval: float = 1.0
    ) -> T:
        """:func:`wait_for` that also fails fast when a process died, with the log tails."""

        def guarded() -> T | None:
            self.check_alive()
            try:
                return check()
            except ServicesError as exc:  # e.g. the code location failed to load
                raise ServicesError(f"{exc}\n{self.diagnostics()}") from None

        return wait_for(guarded, timeout, what, interval=interval, context=self.diagnostics)

    def wait_for_run(self, run_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the run is SUCCESS, FAILURE or CANCELED; return :meth:`DagsterApi.run`."""
        self.wait_for(
            lambda: self.api.run_status(run_id) in TERMINAL_STATUSES,
            timeout,
            f"run {run_id} to finish",
        )
        return self.api.run(run_id)

    def diagnostics(self, lines: int = 60) -> str:
        """The tails of the processes' logs."""
        parts = [f"--- DAGSTER_HOME={self.dagster_home} ({self.instance_yaml.name})"]
        for name in ("daemon", "webserver"):
            proc = self.procs.get(name)
            state = (
                "not started"
                if proc is None
                else ("running" if proc.poll() is None else f"exited {proc.returncode}")
            )
            parts.append(f"--- {name} ({state}): last {lines} lines of {self.log_path(name)}")
            parts.append(_tail(self.log_path(name), lines))
        return "\n".join(parts)

    def stop(self, grace: float = 20.0) -> None:
        """Stop both process groups (SIGTERM, then SIGKILL) and kill any straggler by PID."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            # the group may outlive its leader (code servers, run workers)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for pid in processes_with_marker(self.token):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


# --- fixtures -----------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Remember each phase's report on the item, so fixtures can tell that a test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"_e2e_report_{report.when}", report)


def _failed(node: pytest.Item) -> bool:
    return any(
        getattr(getattr(node, f"_e2e_report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


@pytest.fixture
def dagster_services(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., DagsterServices]]:
    """Yield ``start(instance_yaml, env) -> DagsterServices`` (started and ready).

    Every service started is stopped afterwards, also when the test or the start failed;
    the log tails are printed when the test failed.
    """
    started: list[DagsterServices] = []

    def start(instance_yaml: Path, env: Mapping[str, str]) -> DagsterServices:
        services = DagsterServices(tmp_path / f"dagster{len(started)}", instance_yaml, env)
        started.append(services)
        services.start()
        return services

    try:
        yield start
    finally:
        for services in started:
            if _failed(request.node):
                print(services.diagnostics(120))
            begun = time.monotonic()
            services.stop()
            print(f"dagster services stopped in {time.monotonic() - begun:.1f} s")
