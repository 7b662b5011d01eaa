#include "transport/peer_jobs.h"

#include <nlohmann/json.hpp>

namespace cutpilot::transport {
namespace {

using Json = nlohmann::json;

proto::StartJob peer_job(const std::string& run, const std::string& host, Json spec) {
  const std::string action = spec["action"].get<std::string>();
  spec["name"] = run;
  return {run + "/peer-" + action + "/" + host, "peer", spec.dump()};
}

}  // namespace

proto::StartJob keygen_job(const std::string& run, const std::string& host) {
  return peer_job(run, host, {{"action", "keygen"}});
}

proto::StartJob authorize_job(const std::string& run, const std::string& host,
                              const std::string& public_key,
                              const std::vector<std::string>& permit_open) {
  Json spec = {{"action", "authorize"}, {"public_key", public_key}};
  if (!permit_open.empty()) spec["permit_open"] = permit_open;
  return peer_job(run, host, spec);
}

proto::StartJob revoke_job(const std::string& run, const std::string& host) {
  return peer_job(run, host, {{"action", "revoke"}});
}

proto::StartJob forget_job(const std::string& run, const std::string& host) {
  return peer_job(run, host, {{"action", "forget"}});
}

std::string public_key_of(const proto::JobFinished& finished) {
  const Json result = Json::parse(finished.result, nullptr, false);
  if (!result.is_object() || !result.contains("public_key") || !result["public_key"].is_string())
    return "";
  return result["public_key"].get<std::string>();
}

std::vector<proto::Message> run_job(Fleet& fleet, JobTracker& tracker, const std::string& host,
                                    proto::StartJob request, std::chrono::milliseconds limit,
                                    const std::function<void(const proto::Message&)>& seen) {
  const std::string id = request.job_id;
  tracker.start(host, std::move(request));
  std::vector<proto::Message> events;
  std::vector<JobEvent> out;
  fleet.run_until(
      [&](const std::vector<HostEvent>& happened) {
        for (const auto& e : happened)
          tracker.handle(e, out);
        for (auto& e : out) {
          if (e.job_id != id) continue;
          if (seen) seen(e.message);
          events.push_back(std::move(e.message));
        }
        out.clear();
        return tracker.done(id);
      },
      limit);
  return events;
}

}  // namespace cutpilot::transport
