"""A subscriber that stops reading: a receive buffer as small as the kernel allows,
CONNECT and SUBSCRIBE by hand (MQTT 3.1.1, QoS 0), "subscribed" on stdout, then it
never reads again until killed. Usage: stuck-subscriber.py HOST PORT USER PASSWORD FILTER"""
import socket
import struct
import sys
import time

host, port, user, password, topic_filter = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]


def utf8(text):
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def packet(first_byte, body):
    length, encoded = len(body), b""
    while True:
        digit, length = length % 128, length // 128
        encoded += bytes([digit | (0x80 if length else 0)])
        if not length:
            return bytes([first_byte]) + encoded + body


sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
sock.connect((host, port))
connect = utf8("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 600)
sock.sendall(packet(0x10, connect + utf8(f"stuck-{time.time_ns()}") + utf8(user) + utf8(password)))
if sock.recv(4)[3] != 0:
    sys.exit("login refused")
sock.sendall(packet(0x82, struct.pack("!H", 1) + utf8(topic_filter) + bytes([0])))
if sock.recv(5)[4] != 0:
    sys.exit("subscription refused")
print("subscribed", flush=True)
# Not a wait for anything: it holds the socket unread until the test kills it. The hour
# only bounds an orphan if a test run dies before its cleanup.
time.sleep(3600)
