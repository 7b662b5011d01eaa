#include "cli/run_output.h"

#include <ctime>

#include "cli/output.h"
#include "run/downtime.h"
#include "run/prediction.h"

namespace cutpilot::cli {
namespace {

nlohmann::json or_null(const std::string& text) {
  return text.empty() ? nlohmann::json(nullptr) : nlohmann::json(text);
}

template <class T>
nlohmann::json or_null(const std::optional<T>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

std::string bytes_text(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit ? "%.1f %s" : "%.0f %s", bytes, units[unit]);
  return text;
}

// "host step: " — the cockpit speaks for itself and for whole steps, a link for its host.
std::string who(const std::string& host, const std::string& step) {
  return (host.empty() ? "cockpit" : host) + " " + (step.empty() ? "run" : step) + ": ";
}

// What one event says, as the visitor of event_to_line.
struct LineOf {
  std::string operator()(const plans::StepEvent& e) const {
    return who("", e.step) + plans::state_name(e.state) +
           (e.detail.empty() ? "" : " (" + e.detail + ")");
  }
  std::string operator()(const plans::ProgressEvent& e) const {
    std::string text = who(e.host, e.step) + bytes_text(static_cast<double>(e.bytes));
    if (e.total && *e.total > 0) {
      char pct[16];
      std::snprintf(pct, sizeof pct, " (%.0f%%)",
                    100.0 * static_cast<double>(e.bytes) / static_cast<double>(*e.total));
      text += " of " + bytes_text(static_cast<double>(*e.total)) + pct;
    }
    if (e.rate > 0) text += ", " + bytes_text(e.rate) + "/s";
    if (e.files_total)
      text += ", " + std::to_string(e.files.value_or(0)) + "/" + std::to_string(*e.files_total) +
              " " + e.unit;
    if (e.eta_s) text += ", " + plans::format_seconds(*e.eta_s) + " left";
    if (!e.item.empty()) text += ", " + e.item;
    return text;
  }
  std::string operator()(const plans::LogEvent& e) const {
    return who(e.host, e.step) + (e.stream == "stderr" && !e.notice ? "! " : "") + e.line;
  }
  std::string operator()(const plans::HealthEvent& e) const {
    return who(e.host, e.step) + e.target + " is " + e.status;
  }
  std::string operator()(const plans::HostEvent& e) const {
    return e.host + " link: " + e.state + (e.error.empty() ? "" : ": " + e.error) +
           (e.facts.empty() ? "" : " (" + e.facts + ")");
  }
  std::string operator()(const plans::DowntimeEvent& e) const {
    std::string text = who("", "") + "downtime " + e.state;
    if (e.state == "started") text += " " + plans::format_seconds(e.seconds);
    if (e.state == "ended") text += " " + plans::format_estimate(e.seconds);
    if (e.state == "predicted" && !e.basis.empty())
      text += " " + e.basis;
    else if (e.state == "ended" && e.predicted_at_start_s)
      text += ", predicted " + plans::prediction_error_text(*e.predicted_at_start_s, e.seconds) +
              " when it started";
    else if (e.predicted_s)
      text += std::string(e.state == "predicted" ? " " : ", predicted ") +
              (e.at_least ? "at least " : "") + plans::format_seconds(*e.predicted_s);
    if (e.budget_s) text += " (budget " + plans::format_seconds(*e.budget_s) + ")";
    return text;
  }
  std::string operator()(const plans::RunEvent& e) const {
    return who("", "") + "run " + e.state + " after " + plans::format_seconds(e.seconds);
  }
};

// The --json object of one event, as the visitor of event_to_json.
struct JsonOf {
  nlohmann::json operator()(const plans::StepEvent& e) const {
    auto j = event_json("step");
    j["step"] = e.step;
    j["state"] = plans::state_name(e.state);
    return j;
  }
  nlohmann::json operator()(const plans::ProgressEvent& e) const {
    auto j = event_json("progress");
    j["step"] = e.step;
    j["host"] = e.host;
    j["bytes"] = e.bytes;
    j["total"] = or_null(e.total);
    j["rate"] = e.rate;
    j["eta_s"] = or_null(e.eta_s);
    if (e.files_total || e.files) {
      j["files"] = e.files.value_or(0);
      j["files_total"] = or_null(e.files_total);
    }
    return j;
  }
  nlohmann::json operator()(const plans::LogEvent& e) const {
    auto j = event_json("log");
    j["step"] = or_null(e.step);
    j["host"] = or_null(e.host);
    j["stream"] = e.stream;
    j["line"] = e.line;
    return j;
  }
  nlohmann::json operator()(const plans::HealthEvent& e) const {
    auto j = event_json("health");
    j["host"] = e.host;
    j["target"] = e.target;
    j["status"] = e.status;
    return j;
  }
  nlohmann::json operator()(const plans::HostEvent& e) const {
    auto j = event_json("host");
    j["host"] = e.host;
    j["state"] = e.state;
    j["error"] = or_null(e.error);
    return j;
  }
  nlohmann::json operator()(const plans::DowntimeEvent& e) const {
    if (e.state != "started" && e.state != "ended") return nullptr;  // not in the schema
    auto j = event_json("downtime");
    j["state"] = e.state;
    j["seconds"] = e.seconds;
    j["predicted_s"] = or_null(e.state == "ended" && e.predicted_at_start_s ? e.predicted_at_start_s
                                                                            : e.predicted_s);
    return j;
  }
  nlohmann::json operator()(const plans::RunEvent& e) const {
    auto j = event_json("run");
    j["state"] = e.state;
    j["seconds"] = e.seconds;
    return j;
  }
};

}  // namespace

nlohmann::json event_to_json(const plans::Event& event) {
  return std::visit(JsonOf{}, event);
}

std::string event_to_line(const plans::Event& event) {
  return std::visit(LineOf{}, event);
}

void RunPrinter::print(const plans::Event& event) {
  if (const auto* p = std::get_if<plans::ProgressEvent>(&event)) {
    const auto now = std::chrono::steady_clock::now();
    auto& last = last_progress_[p->step + "\n" + p->host];
    const bool done = p->total && p->bytes >= *p->total;
    if (!done && now - last < std::chrono::seconds(1)) return;
    last = now;
  }
  if (json_) {
    const auto j = event_to_json(event);
    if (!j.is_null())
      std::fprintf(out_, "%s\n",
                   j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char stamp[16];
    std::strftime(stamp, sizeof stamp, "%H:%M:%S", &local);
    std::fprintf(out_, "%s %s\n", stamp, event_to_line(event).c_str());
  }
  std::fflush(out_);
}

}  // namespace cutpilot::cli
