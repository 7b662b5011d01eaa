#include "transport/protocol.h"

namespace cutpilot::proto {

#define CUTPILOT_COUNT(id, name, text) +1
static_assert(std::variant_size_v<Message> == 0 CUTPILOT_MESSAGES(CUTPILOT_COUNT),
              "Message must list every struct of CUTPILOT_MESSAGES");
#undef CUTPILOT_COUNT

MessageType type_of(const Message& message) {
  return std::visit([](const auto& m) { return MessageTraits<std::decay_t<decltype(m)>>::kType; },
                    message);
}

std::string_view type_name(MessageType type) {
  switch (type) {
#define CUTPILOT_NAME(id, name, text) \
  case MessageType::k##name:          \
    return text;
    CUTPILOT_MESSAGES(CUTPILOT_NAME)
#undef CUTPILOT_NAME
  }
  return "unknown";
}

bool is_known_type(uint8_t type) {
  return type_name(static_cast<MessageType>(type)) != "unknown";
}

}  // namespace cutpilot::proto
