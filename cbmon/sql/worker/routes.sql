-- Where and how to deliver these event types; "enabled" only stops queuing, not rows queued.
SELECT event_type, target_url, retry_policy FROM {schema}.callback_router
WHERE event_type = ANY(%s)
