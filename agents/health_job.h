// The `health` job kind: containers (through the Docker Engine API), HTTP and TCP probes,
// disk free, load and systemd units, looked at once, until all are good, or until cancelled.
//
// Spec (JSON; unknown fields, and fields of another check, are errors):
//   {"check": "containers" | "http" | "tcp" | "disk" | "load" | "systemd" | "dns",   required
//    "mode": "once" | "wait" | "watch",        default once
//    "timeout_ms": N,        wait: give up after N ms (default 300000); watch: stop after N ms
//                            (default 0: until cancelled); the last look is never cut short
//    "interval_ms": N,       between two looks (default 1000, at least 50)
//    "request_timeout_ms": N one HTTP exchange, connect or command (default 5000)
//    ...the check's fields}
// containers: "select": {"names": [...], "labels": {"k": "v"}, "project": "compose project"}
//   (at least one; all given must hold; a name matches a container's name or its compose
//   service, and each name must match), "socket": "/path" (default: DOCKER_HOST's unix://
//   path, else /var/run/docker.sock), "action": "stop" | "start" | "restart" (done first,
//   then the mode; after stop, "good" means stopped), "stop_timeout_s": N (default 10).
//   Status: the health (healthy, unhealthy, starting) of a running container that has a
//   health check, else its state (running, exited, created, paused, restarting, dead), or
//   missing. Good: running, and healthy where it has a health check.
// http: "url" (http:// or https://), "expect_status" (default 200), "expect_body"
//   (a substring), "host_header", "connect_to": "ADDRESS[:PORT]" (like curl --resolve: the
//   Host header, SNI and certificate name stay the URL's), "tls_verify" (default true: the
//   host's CA bundle plus "ca_file"). Status: ok, unexpected, unreachable.
// tcp: "address", "port", "expect": "open" | "closed" (default open). Status: open, closed.
// disk: "path", "min_free_bytes" and/or "min_free_percent". Status: ok, low, error.
// load: "max_load1" (the 1-minute load average from /proc/loadavg). Status: ok, high.
// systemd: "unit", "expect": the ActiveState wanted (default "active"). Status: the unit's
//   ActiveState, or not-found; no systemctl (or no systemd running) fails the job.
// dns: "name", "record_type" ("A" default, or "AAAA"), "servers" (["ADDRESS[:PORT]"]; none:
//   /etc/resolv.conf's), "expect_addresses", "max_ttl_s". A target per server; status
//   "answering ADDRESSES" (good when they are the expected ones and the TTL is within the
//   bound), NXDOMAIN/SERVFAIL/..., no-records or unreachable; facts rcode, addresses, ttl,
//   authoritative.
//
// Each change of a target's (status, detail) is sent once as a Health event; a target no
// longer there (a container removed, an API error cleared) once with status "removed". The job
// succeeds when every target is good (once: at its one look; wait: as soon as they are;
// watch: at its timeout); a wait that runs out of time ends kTimedOut naming the targets
// not yet good; a cancelled watch ends kCancelled. JobFinished.result:
//   {"check", "mode", "good": bool, "seconds", "targets": [{"target", "status", "detail",
//    "good", ...facts: container id/state/health/restarts/failing_streak/last_check/exit_code,
//    http status_code/ms, disk free/total/free_percent, load load1, systemd states, dns}]}
#pragma once

#include <string>
#include <string_view>

#include "agents/runner.h"

namespace cutpilot::agent {

// Checks a health spec before the job is claimed.
bool validate_health_spec(std::string_view spec, std::string& error);
// Runs a health job to the end.
proto::JobFinished run_health(std::string_view spec, JobContext& job);

}  // namespace cutpilot::agent
