#include "tui/view.h"

#include <curses.h>
#include <langinfo.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <clocale>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "tui/panes.h"

namespace cutpilot::tui {

// Below this size the cockpit says so instead of drawing a broken layout.
constexpr int kMinRows = 24;
constexpr int kMinCols = 80;

struct View::Screen {
  SCREEN* screen = nullptr;
  std::FILE* out = nullptr;
  Style style;
  int rows = 0;
  int cols = 0;
  bool banner = false;  // the layout has a banner row
  bool too_small = false;
  WINDOW* input = nullptr;  // never drawn: wgetch on it refreshes nothing
  WINDOW* top = nullptr;
  WINDOW* banner_win = nullptr;
  WINDOW* steps = nullptr;
  WINDOW* hosts = nullptr;
  WINDOW* rule = nullptr;  // the line between the left and right columns
  WINDOW* detail = nullptr;
  WINDOW* jobs = nullptr;
  WINDOW* log = nullptr;
  WINDOW* status = nullptr;
  WINDOW* help = nullptr;

  WINDOW** windows[10] = {&top,    &banner_win, &steps, &hosts,  &rule,
                          &detail, &jobs,       &log,   &status, &help};

  void drop_windows() {
    for (WINDOW** win : windows)
      if (*win) {
        delwin(*win);
        *win = nullptr;
      }
  }

  void layout(bool with_banner) {
    drop_windows();
    banner = with_banner;
    too_small = rows < kMinRows || cols < kMinCols;
    if (too_small) {
      status = newwin(rows, cols, 0, 0);
      return;
    }
    const int body_top = banner ? 2 : 1;
    const int body = rows - body_top - 1;
    const int left = std::clamp(cols * 2 / 5, 32, 56);
    const int right = cols - left - 1;
    const int hosts_rows = std::max(5, body * 2 / 5);
    const int detail_rows = 6;
    const int jobs_rows = std::max(5, body * 3 / 10);
    top = newwin(1, cols, 0, 0);
    if (banner) banner_win = newwin(1, cols, 1, 0);
    steps = newwin(body - hosts_rows, left, body_top, 0);
    hosts = newwin(hosts_rows, left, body_top + body - hosts_rows, 0);
    rule = newwin(body, 1, body_top, left);
    detail = newwin(detail_rows, right, body_top, left + 1);
    jobs = newwin(jobs_rows, right, body_top + detail_rows, left + 1);
    log =
        newwin(body - detail_rows - jobs_rows, right, body_top + detail_rows + jobs_rows, left + 1);
    status = newwin(1, cols, rows - 1, 0);
    const int help_rows = std::min(rows - 2, static_cast<int>(key_table().size()) + 4);
    const int help_cols = std::min(cols - 4, 64);
    help = newwin(help_rows, help_cols, (rows - help_rows) / 2, (cols - help_cols) / 2);
  }
};

namespace {

bool utf8_locale() {
  const char* codeset = nl_langinfo(CODESET);
  return codeset && std::strcmp(codeset, "UTF-8") == 0;
}

Style make_style(bool color) {
  Style style;
  style.utf8 = utf8_locale();
  auto set = [&](Role role, attr_t attr) { style.roles[static_cast<int>(role)] = attr; };
  const char* no_color = std::getenv("NO_COLOR");
  color = color && !(no_color && *no_color) && has_colors();
  if (color) {
    start_color();
    use_default_colors();
    init_pair(1, COLOR_GREEN, -1);
    init_pair(2, COLOR_YELLOW, -1);
    init_pair(3, COLOR_RED, -1);
    init_pair(4, COLOR_CYAN, -1);
    init_pair(5, COLOR_WHITE, COLOR_RED);
    init_pair(6, COLOR_BLACK, COLOR_CYAN);
    init_pair(7, COLOR_BLUE, -1);
    set(Role::kNormal, A_NORMAL);
    set(Role::kGood, COLOR_PAIR(1));
    set(Role::kWarn, COLOR_PAIR(2) | A_BOLD);
    set(Role::kBad, COLOR_PAIR(3) | A_BOLD);
    set(Role::kActive, COLOR_PAIR(4) | A_BOLD);
    set(Role::kDim, A_DIM);
    set(Role::kHeader, COLOR_PAIR(7) | A_BOLD | A_UNDERLINE);
    set(Role::kFocused, COLOR_PAIR(6) | A_BOLD);
    set(Role::kBanner, COLOR_PAIR(5) | A_BOLD);
    set(Role::kSelected, A_REVERSE);
  } else {
    // Monochrome: meaning carried by the glyphs and words; attributes only for emphasis.
    set(Role::kNormal, A_NORMAL);
    set(Role::kGood, A_NORMAL);
    set(Role::kWarn, A_BOLD);
    set(Role::kBad, A_BOLD | A_UNDERLINE);
    set(Role::kActive, A_BOLD);
    set(Role::kDim, A_DIM);
    set(Role::kHeader, A_UNDERLINE);
    set(Role::kFocused, A_REVERSE | A_BOLD);
    set(Role::kBanner, A_REVERSE | A_BOLD);
    set(Role::kSelected, A_REVERSE);
  }
  return style;
}

// The terminal's size from the kernel (ncurses' own idea lags behind a SIGWINCH).
bool terminal_size(std::FILE* out, int& rows, int& cols) {
  winsize size{};
  if (ioctl(fileno(out), TIOCGWINSZ, &size) != 0 || size.ws_row == 0 || size.ws_col == 0)
    return false;
  rows = size.ws_row;
  cols = size.ws_col;
  return true;
}

void show(WINDOW* win) {
  if (win) wnoutrefresh(win);
}

}  // namespace

View::View(std::FILE* in, std::FILE* out, ViewOptions options) : screen_(new Screen) {
  screen_->out = out;
  // ncursesw writes UTF-8 only under a UTF-8 LC_CTYPE: take the environment's unless the
  // program already chose one.
  if (const char* ctype = std::setlocale(LC_CTYPE, nullptr); ctype && std::strcmp(ctype, "C") == 0)
    std::setlocale(LC_CTYPE, "");
  screen_->screen = newterm(options.term, out, in);
  if (!screen_->screen) throw std::runtime_error("ncurses cannot drive this terminal");
  set_term(screen_->screen);
  raw();  // Ctrl-C is a key (leave), not a signal that would skip endwin
  noecho();
  nonl();
  curs_set(0);
  set_escdelay(25);
  screen_->style = make_style(options.color);
  screen_->rows = LINES;
  screen_->cols = COLS;
  screen_->input = newwin(1, 1, 0, 0);
  keypad(screen_->input, TRUE);
  nodelay(screen_->input, TRUE);
  screen_->layout(false);
}

View::~View() {
  set_term(screen_->screen);
  screen_->drop_windows();
  if (screen_->input) delwin(screen_->input);
  endwin();
  delscreen(screen_->screen);
}

bool View::is_resize(int key) {
  return key == KEY_RESIZE;
}

int View::rows() const {
  return screen_->rows;
}
int View::cols() const {
  return screen_->cols;
}

bool View::resize() {
  set_term(screen_->screen);
  int rows = LINES;
  int cols = COLS;
  terminal_size(screen_->out, rows, cols);
  if (rows == screen_->rows && cols == screen_->cols) return false;
  resizeterm(rows, cols);
  screen_->rows = rows;
  screen_->cols = cols;
  screen_->layout(screen_->banner);
  return true;
}

std::optional<int> View::read_key() {
  set_term(screen_->screen);
  untouchwin(screen_->input);
  const int key = wgetch(screen_->input);
  if (key == ERR) return std::nullopt;
  return key;
}

void View::draw(const Model& model, UiState& ui, uint32_t dirty, Clock::time_point now) {
  set_term(screen_->screen);
  Screen& s = *screen_;
  const bool banner = model.point_of_no_return() != nullptr;
  if (banner != s.banner) dirty |= part::kLayout;
  if (dirty & part::kLayout) {
    s.layout(banner);
    clearok(curscr, TRUE);  // the next doupdate repaints everything: no leftovers
    dirty = part::kAll;
  }
  if (s.too_small) {
    werase(s.status);
    put(s.status, 0, 0,
        "cutpilot needs " + std::to_string(kMinCols) + "x" + std::to_string(kMinRows) +
            "; this terminal is " + std::to_string(s.cols) + "x" + std::to_string(s.rows),
        A_BOLD);
    put(s.status, 1, 0, "q leaves; the run goes on", A_NORMAL);
    show(s.status);
    doupdate();
    return;
  }
  const Style& style = s.style;
  ui.page = std::max(1, getmaxy(ui.focus == Pane::kLog ? s.log : s.steps) - 2);
  if (dirty & part::kTop) {
    draw_top(s.top, model, style, now);
    show(s.top);
  }
  if ((dirty & (part::kBanner | part::kTop)) && s.banner_win) {
    draw_banner(s.banner_win, model, style);
    show(s.banner_win);
  }
  if (dirty & part::kSteps) {
    draw_steps(s.steps, model, ui, style, now);
    draw_detail(s.detail, model, ui, style);
    show(s.steps);
    show(s.detail);
  }
  if (dirty & part::kHosts) {
    draw_hosts(s.hosts, model, ui, style);
    show(s.hosts);
  }
  if ((dirty & part::kAll) == part::kAll) {
    werase(s.rule);
    wattrset(s.rule, style(Role::kDim));
    mvwvline(s.rule, 0, 0, ACS_VLINE, getmaxy(s.rule));
    show(s.rule);
  }
  if (dirty & part::kJobs) {
    draw_jobs(s.jobs, model, ui, style);
    show(s.jobs);
  }
  if (dirty & part::kLog) {
    draw_log(s.log, model, ui, style);
    show(s.log);
  }
  if (dirty & (part::kStatus | part::kTop)) {
    draw_status(s.status, model, ui, style);
    show(s.status);
  }
  if (ui.help && dirty) {
    draw_help(s.help, style);
    touchwin(s.help);
    show(s.help);
  }
  doupdate();
}

}  // namespace cutpilot::tui
