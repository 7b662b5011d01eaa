// The image action kind: a file or block device of another plan host copied into a file on the
// step's host as one stream, checksummed on both ends (agents/image_job.h).
#include <algorithm>

#include "plans/kinds.h"

namespace cutpilot::plans {
namespace {

using Json = nlohmann::json;

// An image table as read, with what must be checked once all of it is known.
struct ImageRead : ImageAction {
  bool has_from = false, has_to = false;
  std::optional<Located> from_at;
};

constexpr FieldSpec<ImageRead> kImageFields[] = {
    {"from",
     [](Reader& r, const Entry& e, ImageRead& x) {
       x.has_from = true;
       auto v = r.string(e);
       if (!v) return;
       const size_t colon = v->find(':');
       if (colon == std::string::npos || colon == 0 || v->front() == '/' ||
           colon + 1 >= v->size() || (*v)[colon + 1] != '/') {
         r.value_error(
             e, "must be HOST:/path on another plan host (the image's source), not " + quote(*v));
         return;
       }
       x.from_host = v->substr(0, colon);
       x.from_path = v->substr(colon + 1);
       x.from_at = Located{x.from_host, r.source().pos_of(e.value)};
     }},
    {"to",
     [](Reader& r, const Entry& e, ImageRead& x) {
       x.has_to = true;
       auto v = r.string(e);
       if (!v) return;
       if (v->empty() || v->front() != '/' || v->back() == '/')
         r.value_error(e,
                       "must be the absolute path of a file on the step's host, not " + quote(*v));
       x.to_path = *v;
     }},
    {"volume",
     [](Reader& r, const Entry& e, ImageRead& x) {
       if (auto v = r.string(e)) x.volume = *v;
     }},
    {"compress", [](Reader& r, const Entry& e, ImageRead& x) { read_compress(r, e, x.compress); }},
    {"timeout", read_time<ImageRead, &ImageAction::timeout>},
};

}  // namespace

std::span<const std::string_view> compress_names() {
  static constexpr std::string_view kNames[] = {"none", "gzip", "zstd", "auto"};
  return kNames;
}

void read_compress(Reader& r, const Entry& e, Compress& out) {
  const auto names = compress_names();
  if (auto v = r.choice(e, names))
    out = static_cast<Compress>(std::find(names.begin(), names.end(), *v) - names.begin());
}

std::optional<Action> read_image_action(ActionInput& input) {
  Reader& reader = input.reader;
  const size_t before = reader.diagnostics().size();
  ImageRead read;
  if (!read_action_table<ImageRead>(
          input, kImageFields, read,
          "{ from = \"HOST:/dev/xvdf\", to = \"/srv/images/xvdf.img\", volume = \"data\" }"))
    return std::nullopt;
  if (!read.has_from || !read.has_to)
    reader.error(reader.source().pos_of(input.entry.value),
                 input.section +
                     " needs 'from' and 'to' (from = \"HOST:/dev/xvdf\", to = \"/srv/images/"
                     "xvdf.img\")");
  if (read.from_at)
    input.hosts.push_back({*read.from_at, "'from' in " + input.section, HostUse::kOther});
  if (errors_since(reader, before)) return std::nullopt;
  ImageAction image = read;
  if (image.volume.empty()) image.volume = image.from_path.substr(image.from_path.rfind('/') + 1);
  return Action(std::move(image));
}

Translation image_job(const ImageAction& image, const JobInput& input) {
  std::string error;
  std::optional<Json> peer = peer_spec(image.from_host, input, error);
  if (!peer) return job_error(input, error);
  // A volume is root's on its host: it is read there as root when the host has sudo.
  const HostSpec* host = input.plan.find_host(image.from_host);
  if (host && host->sudo) (*peer)["sudo"] = true;
  Json spec = {{"from", image.from_path},
               {"to", image.to_path},
               {"peer", std::move(*peer)},
               {"compress", compress_names()[static_cast<size_t>(image.compress)]},
               {"volume", image.volume},
               {"source_host", image.from_host}};
  if (const uint64_t timeout = timeout_ms(image.timeout, input)) spec["timeout_ms"] = timeout;
  return make_job("image", spec);
}

std::string describe_image(const ImageAction& image, const DescribeInput& input) {
  const HostSpec* host = input.plan.find_host(image.from_host);
  const PeerAccess peer = host ? default_peer_access(*host) : PeerAccess{image.from_host};
  std::string line = "copy " + image.from_host + ":" + image.from_path + " to " + image.to_path +
                     " as one stream (volume " + quote(image.volume) +
                     "), sha256 on both ends, holes kept";
  if (image.compress != Compress::kNone)
    line += ", compressed with " +
            std::string(image.compress == Compress::kAuto
                            ? "zstd where both hosts have it, else gzip"
                            : compress_names()[static_cast<size_t>(image.compress)]);
  line += "   (logs in to " + image.from_host + " as " +
          (peer.user.empty() ? "the user the cockpit logs in as" : peer.user) +
          (host && host->sudo ? ", reads it as root via sudo" : "") + ")";
  return line;
}

}  // namespace cutpilot::plans
