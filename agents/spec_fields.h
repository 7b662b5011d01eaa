// Strict readers for job specs (JSON): each known field through its handler, any
// other field an error that lists the known ones.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace cutpilot::agent {

// One handler per field name; a handler returns false when the value is wrong.
using FieldHandlers = std::map<std::string, std::function<bool(const nlohmann::json&)>>;

// Reads every field of object j through its handler; false with error set otherwise.
bool read_fields(const nlohmann::json& j, std::string_view what, const FieldHandlers& handlers,
                 std::string& error);

// A handler storing a string field (error names it when it is not a string).
std::function<bool(const nlohmann::json&)> text_field(std::string& out, std::string& error,
                                                      std::string name);
// A handler storing a boolean field.
std::function<bool(const nlohmann::json&)> flag_field(bool& out);
// A handler storing a non-negative integer field.
std::function<bool(const nlohmann::json&)> count_field(uint64_t& out);
// A handler storing a list of non-empty strings.
std::function<bool(const nlohmann::json&)> list_field(std::vector<std::string>& out);

}  // namespace cutpilot::agent
