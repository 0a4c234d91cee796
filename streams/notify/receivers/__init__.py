"""Receivers: the integrations that deliver a notification, and delivery with retries.

Every receiver has ``name``, ``kind``, ``send_resolved``, ``async send(notification, rendered)``
(raises :class:`~emowatch.streams.notify.model.TransientDeliveryError` or
:class:`~emowatch.streams.notify.model.PermanentDeliveryError`, messages free of secrets) and
``async close()`` (:class:`~emowatch.streams.notify.receivers.base.Receiver`). Wrap a send in
:func:`~emowatch.streams.notify.receivers.base.deliver_to` for timeouts, retries and a
:class:`~emowatch.streams.notify.receivers.base.DeliveryResult`.

================  ============================  ==============================================
module            class (``kind``)              delivers to
================  ============================  ==============================================
webhook           WebhookReceiver (webhook)     any HTTP endpoint: signed JSON, our body or
                                                Alertmanager's webhook body (version 4)
alertmanager      AlertmanagerReceiver          an existing Alertmanager's ``/api/v2/alerts``
email             EmailReceiver (email)         SMTP: STARTTLS / implicit TLS / plain, AUTH
errcode_robots    DingTalkReceiver (dingtalk),  DingTalk / WeCom group robots (their own HTTP
                  WeComReceiver (wecom)         API: Apprise misreports their refusals)
robots            RobotReceiver (feishu, lark,  chat robots through Apprise;
                  slack), robot_receiver()      ``robot_receiver(name, kind, **kw)`` builds any robot
log               LogReceiver (log)             one structured log line
================  ============================  ==============================================

Shared: ``base`` (retries, result, protocol, error mapping), ``safety`` (host allow-list, secret
masking), ``httpclient`` (one JSON POST), ``amformat`` (Alert -> Alertmanager alert / payload).

Constructor arguments are documented at the top of each module. Modules are imported one by one
(``from emowatch.streams.notify.receivers.email import EmailReceiver``) so a notifier that uses
no robot does not import Apprise.
"""
