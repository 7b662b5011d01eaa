#include "agents/spec_fields.h"

namespace cutpilot::agent {

using Json = nlohmann::json;

bool read_fields(const Json& j, std::string_view what, const FieldHandlers& handlers,
                 std::string& error) {
  if (!j.is_object()) {
    error = std::string(what) + " must be a JSON object";
    return false;
  }
  for (const auto& [key, value] : j.items()) {
    const auto it = handlers.find(key);
    if (it == handlers.end()) {
      std::string names;
      for (const auto& [name, handler] : handlers)
        names += (names.empty() ? "" : ", ") + name;
      error = "unknown " + std::string(what) + " field \"" + key + "\" (expected " + names + ")";
      return false;
    }
    if (!it->second(value)) {
      if (error.empty()) error = "bad " + std::string(what) + " field \"" + key + "\"";
      return false;
    }
  }
  return true;
}

std::function<bool(const Json&)> text_field(std::string& out, std::string& error,
                                            std::string name) {
  return [&out, &error, name](const Json& v) {
    if (v.is_string()) out = v.get<std::string>();
    if (!v.is_string()) error = "\"" + name + "\" must be a string";
    return v.is_string();
  };
}

std::function<bool(const Json&)> flag_field(bool& out) {
  return [&out](const Json& v) {
    if (v.is_boolean()) out = v.get<bool>();
    return v.is_boolean();
  };
}

std::function<bool(const Json&)> count_field(uint64_t& out) {
  return [&out](const Json& v) {
    if (v.is_number_unsigned()) out = v.get<uint64_t>();
    return v.is_number_unsigned();
  };
}

std::function<bool(const Json&)> list_field(std::vector<std::string>& out) {
  return [&out](const Json& v) {
    if (!v.is_array()) return false;
    for (const auto& item : v) {
      if (!item.is_string() || item.get<std::string>().empty()) return false;
      out.push_back(item.get<std::string>());
    }
    return true;
  };
}

}  // namespace cutpilot::agent
