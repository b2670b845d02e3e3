"""What an operator sees in the Dagster UI when a mailbox fails: a real browser, real services.

Debian's chromium (``/usr/bin/chromium``, installed by ``scripts/bootstrap.sh``; Playwright
never downloads a browser here) is driven by Playwright against the webserver started by
:class:`~mail_pipeline_tests.e2e.conftest.DagsterServices`, after one ``email_fetch_job`` run
over a healthy mailbox and one with a wrong password on the test Dovecot. It checks what a
person reads, not the API: the run page says the run failed and names the mailbox and its
error; the Runs list shows the run as failed; the ``mailbox`` asset's check page lists the
failing mailbox with its error; the ``fetched_mail`` asset's Partitions tab shows it failed,
and the backfill dialog's "Failed" selection is exactly that mailbox. Screenshots of each
page go to ``MAIL_PIPELINE_TEST_ARTIFACTS`` (when set) or the test's temporary directory,
never into the repository.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.e2e import test_dagster_e2e as dagster_e2e
from mail_pipeline_tests.e2e.conftest import DagsterServices
from mail_pipeline_tests.e2e.mailbox_health import (
    asset_partition_statuses,
    check_partition_statuses,
)
from mail_pipeline_tests.fixtures.dovecot import DovecotServer

pytestmark = [
    pytest.mark.dagster_e2e,
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:Using variable_values:DeprecationWarning"),
]

#: The same two backends as the GraphQL scenario (SQLite, and PostgreSQL for both stores).
storage = dagster_e2e.storage

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: The UI renders client-side from GraphQL: generous for a loaded 2-core machine.
UI_TIMEOUT_MS = 60_000


def _artefacts(tmp_path: Path) -> Path:
    """Where the screenshots go: ``$MAIL_PIPELINE_TEST_ARTIFACTS/<test dir>`` or tmp_path."""
    root = os.environ.get("MAIL_PIPELINE_TEST_ARTIFACTS")
    folder = Path(root) / tmp_path.name if root else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _shoot(page: Page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def _dismiss_welcome(page: Page) -> None:
    """Close the webserver's first-visit "Join the Dagster community" dialog, if shown."""
    skip = page.get_by_role("dialog").get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=5_000)
    except PlaywrightTimeoutError:
        return
    skip.click()


def test_the_ui_shows_the_failed_run_and_the_failing_mailbox(
    storage: dict[str, Any],
    tmp_path: Path,
    dovecot: DovecotServer,
    dagster_services: Callable[..., DagsterServices],
) -> None:
    store = MailStore(storage["store_url"])
    store.upgrade()
    try:
        config = EmailConfigManager(store, dagster_e2e.SECRET)
        good_login, bad_login = dovecot.new_user(), dovecot.new_user()
        good = store.users.add("good", "good@example.test")
        bad = store.users.add("bad", "bad@example.test")
        config.update_fetch_config(
            good.id,
            dagster_e2e._imap_config(dovecot, good_login, dovecot.password_of(good_login.username)),
        )
        config.update_fetch_config(
            bad.id, dagster_e2e._imap_config(dovecot, bad_login, dagster_e2e.WRONG_PASSWORD)
        )
        dovecot.append(good_login.username, dagster_e2e._raw("ui-good-1", good.email, "hello"))
        spool = tmp_path / "spool"
        services = dagster_services(
            storage["instance"],
            {
                **storage["env"],
                "MAIL_PIPELINE_DATABASE_URL": storage["store_url"],
                "MAIL_PIPELINE_ATTACHMENT_ROOT": str(tmp_path / "attachments"),
                "MAIL_PIPELINE_SPOOL_DIR": str(spool),
                "MAIL_PIPELINE_SECRET_KEY": dagster_e2e.SECRET,
                "MAIL_PIPELINE_FETCH_CRON": dagster_e2e.FETCH_CRON,
            },
        )
        api = services.api
        services.wait_for(
            lambda: set(api.partition_keys("email_fetch_job")) >= {"good", "bad"} or None,
            120,
            "mailbox_partitions_sensor to add the partitions good and bad",
        )
        (scheduled,) = api.schedule_dry_run("email_fetch_schedule")["runRequests"]
        run = services.wait_for_run(api.launch_run("email_fetch_job", tags=scheduled["tags"]))
        assert run["status"] == "FAILURE", run
        assert dagster_e2e._message_ids(store, good.id) == ["ui-good-1@e2e.test"]
        assert check_partition_statuses(api)["failed"] == ["bad"]
        assert asset_partition_statuses(api)["failed"] == ["bad"]
        _look(api.base_url, run["runId"], _artefacts(tmp_path))
    finally:
        store.dispose()


def _look(base_url: str, run_id: str, shots: Path) -> None:
    """Open the pages an operator opens and check what they show."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)

            # The run page: failed, the failing step, the mailbox and its error in the log.
            page.goto(f"{base_url}/runs/{run_id}")
            _dismiss_welcome(page)
            expect(page.get_by_text("report_failed_mailboxes").first).to_be_visible()
            expect(page.get_by_text(re.compile(r"^Failure$")).first).to_be_visible()
            expect(
                page.get_by_text(re.compile(r"1 of 2 mailboxes failed: bad \(auth: ")).first
            ).to_be_visible()
            _shoot(page, shots, "run")

            # The Runs list: the run is there, failed, at a glance.
            page.goto(f"{base_url}/runs")
            expect(page.get_by_role("link", name=f"run {run_id[:8]}")).to_be_visible()
            expect(page.get_by_role("img", name="run_failed").first).to_be_visible()
            expect(page.get_by_role("img", name="run_success")).to_have_count(0)
            _shoot(page, shots, "runs_list")

            # The mailbox asset's check: failed; its partitions and its history name the
            # failing mailbox with its error.
            page.goto(f"{base_url}/assets/mailbox?view=checks")
            _dismiss_welcome(page)
            expect(page.get_by_text("last_fetch_ok").first).to_be_visible()
            _shoot(page, shots, "mailbox_checks")
            page.get_by_role("tab", name="Partitions").last.click()
            expect(page.get_by_text("bad", exact=True).first).to_be_visible()
            expect(page.get_by_text("Failed (1)")).to_be_visible()  # bad
            expect(page.get_by_text("Passed (1)")).to_be_visible()  # good
            _shoot(page, shots, "mailbox_check_partitions")
            page.get_by_role("tab", name="Execution history").click()
            expect(page.get_by_text(re.compile(r"auth error: login to IMAP")).first).to_be_visible()
            expect(page.get_by_text("bad", exact=True).first).to_be_visible()
            _shoot(page, shots, "mailbox_check_history")

            # The fetched mail's partitions: bad is failed, good materialized; the backfill
            # dialog offers the failed one.
            page.goto(f"{base_url}/assets/fetched_mail?view=partitions")
            _dismiss_welcome(page)
            expect(page.get_by_text("bad", exact=True).first).to_be_visible()
            expect(page.get_by_text("Failed (1)")).to_be_visible()  # bad
            expect(page.get_by_text("Materialized (1)")).to_be_visible()  # good
            _shoot(page, shots, "fetched_mail_partitions")
            page.get_by_role("button", name=re.compile("Materialize")).first.click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_text("Launch runs to materialize fetched_mail")).to_be_visible()
            dialog.get_by_role("button", name="Failed", exact=True).click()
            # "Failed" selects exactly the failing mailbox
            expect(dialog.get_by_text(re.compile(r"^1 partitions?$"))).to_be_visible()
            expect(dialog.get_by_text("bad", exact=True).first).to_be_visible()
            expect(dialog.get_by_text("good", exact=True)).to_have_count(0)
            _shoot(page, shots, "fetched_mail_backfill_dialog")
        finally:
            browser.close()
