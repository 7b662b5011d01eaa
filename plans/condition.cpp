// `when` conditions: parsing the small language of step.h and evaluating it.
#include <algorithm>
#include <array>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "plans/step.h"
#include "plans/suggest.h"

namespace cutpilot::plans {
namespace {

// A comparison operator as written; two-character ones first so "<=" is not read as "<".
struct OpName {
  std::string_view text;
  CompareOp op;
};

constexpr std::array<OpName, 6> kOps = {{
    {"<=", CompareOp::kLessEqual},
    {">=", CompareOp::kGreaterEqual},
    {"==", CompareOp::kEqual},
    {"!=", CompareOp::kNotEqual},
    {"<", CompareOp::kLess},
    {">", CompareOp::kGreater},
}};

// The states a state test may name.
constexpr std::array<std::string_view, 3> kStates = {"succeeded", "failed", "skipped"};

constexpr std::string_view kForms =
    "write STEP.succeeded, STEP.failed, STEP.skipped, not STEP.succeeded or "
    "STEP.result.FIELD < NUMBER (with < <= > >= == !=)";

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

std::vector<std::string_view> split_dots(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = text.find('.', start);
    parts.push_back(text.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

std::optional<double> parse_number(std::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  const std::string copy(text);
  char* end = nullptr;
  const double value = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size()) return std::nullopt;
  if (copy.find_first_of("xXnN") != std::string::npos) return std::nullopt;  // hex, nan, inf
  return value;
}

bool compare(double left, CompareOp op, double right) {
  switch (op) {
    case CompareOp::kLess:
      return left < right;
    case CompareOp::kLessEqual:
      return left <= right;
    case CompareOp::kGreater:
      return left > right;
    case CompareOp::kGreaterEqual:
      return left >= right;
    case CompareOp::kEqual:
      return left == right;
    case CompareOp::kNotEqual:
      return left != right;
  }
  return false;
}

// The number at field in one host's result JSON (booleans count as 1 and 0).
std::optional<double> field_of(const std::string& result, const std::vector<std::string>& field) {
  const nlohmann::json root = nlohmann::json::parse(result, nullptr, false);
  if (root.is_discarded()) return std::nullopt;
  const nlohmann::json* at = &root;
  for (const std::string& part : field) {
    if (!at->is_object()) return std::nullopt;
    const auto found = at->find(part);
    if (found == at->end()) return std::nullopt;
    at = &*found;
  }
  if (at->is_boolean()) return at->get<bool>() ? 1.0 : 0.0;
  if (at->is_number()) return at->get<double>();
  return std::nullopt;
}

}  // namespace

std::optional<Condition> parse_condition(std::string_view text, std::string& error) {
  Condition condition;
  condition.text = std::string(text);
  std::string_view rest = trim(text);
  if (rest.substr(0, 4) == "not " || rest.substr(0, 4) == "not\t") {
    condition.negated = true;
    rest = trim(rest.substr(4));
  }
  std::string_view left = rest;
  std::optional<std::string_view> right;
  for (const OpName& op : kOps) {
    const size_t at = rest.find(op.text);
    if (at == std::string_view::npos) continue;
    left = trim(rest.substr(0, at));
    right = trim(rest.substr(at + op.text.size()));
    condition.op = op.op;
    break;
  }
  const std::vector<std::string_view> parts = split_dots(left);
  if (parts.size() < 2 || !valid_step_id(parts[0])) {
    error = "is not a condition (" + std::string(kForms) + ")";
    return std::nullopt;
  }
  condition.step = std::string(parts[0]);
  if (!right) {
    const bool state =
        parts.size() == 2 && std::find(kStates.begin(), kStates.end(), parts[1]) != kStates.end();
    if (!state) {
      // `deploy.suceeded`: name the state meant before listing the forms.
      const std::string hint =
          parts.size() == 2 ? did_you_mean(parts[1], {kStates.begin(), kStates.end()}) : "";
      error = "tests " + quote(left) + ", which is not a state" + hint + " (" +
              std::string(kForms) + ")";
      return std::nullopt;
    }
    condition.state = std::string(parts[1]);
    return condition;
  }
  if (parts[1] != "result" || parts.size() < 3) {
    error =
        "compares " + quote(left) + ", which is not a result field (" + std::string(kForms) + ")";
    return std::nullopt;
  }
  for (size_t i = 2; i < parts.size(); ++i) {
    if (!valid_step_id(parts[i])) {
      error = "has an empty or malformed field name in " + quote(left);
      return std::nullopt;
    }
    condition.field.emplace_back(parts[i]);
  }
  const std::optional<double> number = parse_number(*right);
  if (!number) {
    error = "compares with " + quote(*right) + ", which is not a number";
    return std::nullopt;
  }
  condition.number = *number;
  return condition;
}

bool evaluate(const Condition& condition, const OutcomeLookup& lookup) {
  const std::optional<StepOutcome> outcome = lookup ? lookup(condition.step) : std::nullopt;
  bool holds = false;
  if (outcome && condition.state) {
    holds = outcome->state == *condition.state;
  } else if (outcome && !outcome->results.empty()) {
    holds = true;
    for (const std::string& result : outcome->results) {
      const std::optional<double> value = field_of(result, condition.field);
      if (!value || !compare(*value, condition.op, condition.number)) {
        holds = false;
        break;
      }
    }
  }
  return condition.negated ? !holds : holds;
}

bool valid_step_id(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_'))
      return false;
  return true;
}

}  // namespace cutpilot::plans
