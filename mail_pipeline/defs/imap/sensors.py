"""``mailbox_partitions_sensor``: keeps the ``mailboxes`` partitions in step with the configs."""

import dagster as dg

from mail_pipeline.defs.imap.partitions import MAILBOX_PARTITIONS, mailbox_partitions
from mail_pipeline.defs.resources import ImapResource, StoreResource


@dg.sensor(
    name="mailbox_partitions_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps the 'mailboxes' partitions in step with users' valid IMAP configs.",
)
def mailbox_partitions_sensor(
    context: dg.SensorEvaluationContext, store: StoreResource, imap: ImapResource
) -> dg.SensorResult | dg.SkipReason:
    """Add a partition per user with a valid IMAP config; drop those of users without one."""
    wanted = {name for _uid, name, ok, _ in imap.config_manager(store.get()).imap_users() if ok}
    have = set(context.instance.get_dynamic_partitions(MAILBOX_PARTITIONS))
    add, drop = sorted(wanted - have), sorted(have - wanted)
    if not add and not drop:
        return dg.SkipReason(f"{len(have)} mailbox partitions, all in step")
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    if add:
        requests.append(mailbox_partitions.build_add_request(add))
    if drop:
        requests.append(mailbox_partitions.build_delete_request(drop))
    return dg.SensorResult(dynamic_partitions_requests=requests)
