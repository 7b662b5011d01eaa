// The ncurses screen of the cockpit: windows laid out for the terminal's size, drawn from
// the model and the UI state, only the parts that changed, one doupdate per frame.
#pragma once

#include <cstdio>
#include <memory>
#include <optional>

#include "tui/keys.h"
#include "tui/model.h"

namespace cutpilot::tui {

// How the screen looks.
struct ViewOptions {
  bool color = true;           // false, or NO_COLOR in the environment, draws in monochrome
  const char* term = nullptr;  // the terminal type; nullptr: $TERM
};

// One terminal that the cockpit draws on (an ncurses SCREEN from newterm).
class View {
 public:
  // Takes over the terminal whose input is in and output is out; throws
  // std::runtime_error when ncurses does not know the terminal.
  View(std::FILE* in, std::FILE* out, ViewOptions options = {});
  ~View();
  View(const View&) = delete;
  View& operator=(const View&) = delete;

  // Reads the terminal's size again; true when it changed (the windows then are new).
  bool resize();
  // Draws the parts in dirty (part:: bits) and sends the difference to the terminal.
  void draw(const Model& model, UiState& ui, uint32_t dirty, Clock::time_point now);
  // The next key the operator pressed, or nullopt when none is waiting.
  std::optional<int> read_key();
  // Whether key is ncurses' resize key (its own SIGWINCH handler ran on some thread).
  static bool is_resize(int key);
  // The terminal's size.
  int rows() const;
  int cols() const;

  struct Screen;  // the ncurses state: SCREEN, windows, colours

 private:
  std::unique_ptr<Screen> screen_;
};

}  // namespace cutpilot::tui
