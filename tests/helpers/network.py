"""Network probes sent from inside a test host: a TCP connect tells an open port, a closed one
(the kernel answers RST at once: "refused") and a filtered one (a firewall drops the SYN: the
connect times out), and an HTTPS request reaches a site by address.

Every probe runs python3 on the host (the base image has it; curl is not needed), so a host the
stack never configured can send them.
"""

import json
import shlex

_CONNECT = r"""
import concurrent.futures, json, socket, sys, time
targets, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
def connect(target):
    address, port = target
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    start = time.monotonic()
    try:
        sock.connect((address, port))
        state = "open"
    except ConnectionRefusedError:
        state = "refused"
    except (TimeoutError, socket.timeout):
        state = "filtered"
    except OSError as exc:
        state = f"error {exc.errno}"
    finally:
        sock.close()
    return [state, round(time.monotonic() - start, 3)]
with concurrent.futures.ThreadPoolExecutor(len(targets)) as pool:
    print(json.dumps(list(pool.map(connect, targets))))
"""

_HTTPS = r"""
import http.client, json, socket, ssl, sys
address, domain, path = sys.argv[1:4]
context = ssl._create_unverified_context()
class Connection(http.client.HTTPSConnection):
    def connect(self):  # to the address, with the domain as SNI and Host
        sock = socket.create_connection((address, 443), timeout=20)
        self.sock = context.wrap_socket(sock, server_hostname=domain)
conn = Connection(domain, 443, timeout=20, context=context)
conn.request("GET", path)
response = conn.getresponse()
print(json.dumps([response.status, response.read().decode("utf-8", "replace")]))
"""


def connect(host, targets, timeout=1.5):
    """{(address, port): (state, seconds)} of TCP connects from the host, all at once; state is
    "open", "refused" (RST), "filtered" (no answer within the timeout) or "error <errno>"."""
    targets = [[address, int(port)] for address, port in targets]
    out = host.check_output(
        f"python3 -c {shlex.quote(_CONNECT)} {shlex.quote(json.dumps(targets))} {timeout}")
    return {(address, port): tuple(result) for (address, port), result in zip(targets, json.loads(out))}


def https_get(host, address, domain, path):
    """(status, body) of GET https://<domain><path> sent from the host to the address."""
    out = host.check_output(
        f"python3 -c {shlex.quote(_HTTPS)} {shlex.quote(address)} {shlex.quote(domain)} {shlex.quote(path)}")
    status, body = json.loads(out)
    return status, body


def addresses(host):
    """{"ipv4": [...], "ipv6": [...]}: the host's global addresses (no loopback, no link-local)."""
    found = {"ipv4": [], "ipv6": []}
    for line in host.check_output("ip -o addr show scope global").splitlines():
        words = line.split()
        family = {"inet": "ipv4", "inet6": "ipv6"}.get(words[2])
        if family:
            found[family].append(words[3].split("/")[0])
    return found
