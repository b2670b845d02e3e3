"""The retention policy refuses values that make no sense."""

from __future__ import annotations

import pytest

from mail_pipeline.maintenance.retention_policy import RetentionPolicy


def test_policy_is_checked() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        RetentionPolicy(batch_size=0)
    with pytest.raises(ValueError, match="failed_days"):
        RetentionPolicy(failed_days=-1)
