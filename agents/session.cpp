#include "agents/session.h"

#include <unistd.h>

#include "agents/facts.h"
#include "cutpilot/version.h"

namespace cutpilot::agent {

void Session::refuse(proto::ErrorCode code, std::string message, std::vector<proto::Message>& out,
                     bool close) {
  out.push_back(proto::Error{code, std::move(message), ""});
  if (close) closing_ = true;
}

bool Session::handle_job(const proto::Message& request, std::vector<proto::Message>& out) {
  if (const auto* start = std::get_if<proto::StartJob>(&request)) {
    jobs_->start(*start, out);
  } else if (const auto* attach = std::get_if<proto::Attach>(&request)) {
    jobs_->attach(*attach, out);
  } else if (const auto* cancel = std::get_if<proto::CancelJob>(&request)) {
    jobs_->cancel(*cancel, out);
  } else if (std::holds_alternative<proto::ListJobs>(request)) {
    jobs_->list(out);
  } else if (const auto* ack = std::get_if<proto::Ack>(&request)) {
    jobs_->ack(*ack, out);
  } else {
    return false;
  }
  return true;
}

void Session::handle(const proto::Message& request, std::vector<proto::Message>& out) {
  const proto::MessageType type = proto::type_of(request);
  if (static_cast<uint8_t>(type) >= 64)
    return refuse(proto::ErrorCode::kBadRequest,
                  std::string(proto::type_name(type)) + " is an event; the agent takes requests",
                  out, true);
  if (const auto* hello = std::get_if<proto::Hello>(&request)) {
    if (hello->protocol != proto::kProtocolVersion)
      return refuse(proto::ErrorCode::kVersion,
                    "cockpit speaks protocol " + std::to_string(hello->protocol) + " (" +
                        hello->client + "), this agent speaks protocol " +
                        std::to_string(proto::kProtocolVersion) + " (cutpilot-agent " + kVersion +
                        ")",
                    out, true);
    greeted_ = true;
    out.push_back(proto::Ready{proto::kProtocolVersion, kVersion, static_cast<uint32_t>(getpid())});
    return;
  }
  if (!greeted_)
    return refuse(proto::ErrorCode::kBadRequest,
                  "hello expected first, got " + std::string(proto::type_name(type)), out, true);
  if (const auto* ping = std::get_if<proto::Ping>(&request)) {
    out.push_back(proto::Pong{ping->token});
    return;
  }
  if (const auto* facts = std::get_if<proto::Facts>(&request)) {
    proto::HostFacts answer = collect_facts(facts->paths);
    // Every cockpit asks on each connect: the agent's moment to drop spools nobody will ask for.
    if (jobs_) answer.kept_spools = jobs_->expire_spools();
    out.push_back(std::move(answer));
    return;
  }
  if (jobs_ && handle_job(request, out)) return;
  refuse(proto::ErrorCode::kUnsupported,
         std::string(proto::type_name(type)) + " is not supported by cutpilot-agent " + kVersion,
         out, false);
}

}  // namespace cutpilot::agent
