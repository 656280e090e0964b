"""A plain paho-mqtt 1.6 subscriber with a persistent session, as a kiosk
written against paho would be: MQTT 3.1.1, a fixed client id,
clean_session=False, QoS 1, reconnecting on its own. It subscribes only
when the broker has no session for it, and prints one JSON line per
message (topic, payload, retain, dup) and per connection (session present).

usage: paho-subscriber.py HOST PORT CLIENT_ID USERNAME PASSWORD FILTER
"""
import json
import sys

import paho.mqtt.client as mqtt

host, port, client_id, username, password, topic_filter = sys.argv[1:7]


def out(record):
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def on_connect(client, _userdata, flags, rc):
    out({"connack": rc, "session_present": bool(flags.get("session present"))})
    if rc == 0 and not flags.get("session present"):
        client.subscribe(topic_filter, qos=1)


def on_subscribe(_client, _userdata, _mid, granted):
    out({"subscribed": list(granted)})


def on_message(_client, _userdata, message):
    out({
        "topic": message.topic,
        "payload": message.payload.decode("utf-8"),
        "retain": bool(message.retain),
        "dup": bool(message.dup),
        "qos": message.qos,
    })


client = mqtt.Client(client_id=client_id, clean_session=False, protocol=mqtt.MQTTv311)
client.username_pw_set(username, password)
client.on_connect = on_connect
client.on_message = on_message
client.on_subscribe = on_subscribe
client.reconnect_delay_set(min_delay=1, max_delay=2)
client.connect_async(host, int(port), keepalive=30)
client.loop_forever(retry_first_connection=True)
