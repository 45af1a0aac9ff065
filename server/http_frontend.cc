#include "server/http_frontend.h"

#include <httplib.h>

#include "absl/strings/str_cat.h"
#include "server/json_writer.h"
#include "server/log.h"
#include "server/v2_datatype.h"
#include "server/version.h"

namespace coreserve {
namespace {

constexpr char kJson[] = "application/json";
// Connection threads of the REST listener (each keep-alive connection holds one while open). Handlers only
// parse and answer from memory, so a few serve many clients; compute never runs on them.
constexpr int kHttpThreads = 8;

void SendError(httplib::Response& res, int status, std::string_view message) {
  res.status = status;
  res.set_content(ErrorJson(message), kJson);
}

void WriteTensors(JsonWriter& w, const std::vector<runtime::TensorInfo>& tensors) {
  w.StartArray();
  for (const runtime::TensorInfo& t : tensors) {
    w.StartObject();
    w.Key("name");
    WriteString(w, t.name);
    w.Key("datatype");
    WriteString(w, V2DataTypeName(t.type));
    w.Key("shape");
    w.StartArray();
    for (int64_t d : t.shape) w.Int64(d);
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
}

std::string ServerMetadataJson() {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("name");
  w.String("coreserve");
  w.Key("version");
  w.String(CORESERVE_VERSION);
  w.Key("extensions");
  w.StartArray();
  w.EndArray();
  w.EndObject();
  return buffer.GetString();
}

std::string ModelMetadataJson(const ModelEntry& e) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("name");
  WriteString(w, e.name);
  w.Key("versions");
  w.StartArray();
  w.String(std::to_string(e.version).c_str());
  w.EndArray();
  w.Key("platform");
  w.String("onnx_onnxv1");
  w.Key("inputs");
  WriteTensors(w, e.info.inputs);
  w.Key("outputs");
  WriteTensors(w, e.info.outputs);
  w.EndObject();
  return buffer.GetString();
}

// The model named by a /v2/models/{name}[/versions/{version}] route, or an error response already written.
const ModelEntry* FindModel(const ServerState* state, const httplib::Request& req, httplib::Response& res,
                            std::shared_ptr<const ModelRepository>* hold) {
  *hold = state->repository();
  if (*hold == nullptr) {
    SendError(res, 503, "the model repository is still loading");
    return nullptr;
  }
  const std::string version = req.matches.size() > 2 ? req.matches[2].str() : "";
  auto entry = (*hold)->Find(req.matches[1].str(), version);
  if (!entry.ok()) {
    SendError(res, 404, std::string(entry.status().message()));
    return nullptr;
  }
  return *entry;
}

void AddRoutes(httplib::Server& s, const ServerState* state) {
  s.Get("/v2/health/live", [state](const httplib::Request&, httplib::Response& res) {
    res.status = state->live() ? 200 : 400;
  });
  // KServe v2: 200 means ready, a 4xx status means not ready; the body is empty either way.
  s.Get("/v2/health/ready", [state](const httplib::Request&, httplib::Response& res) {
    res.status = state->ready() ? 200 : 400;
  });
  s.Get("/v2", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(ServerMetadataJson(), kJson);
  });

  const std::string model = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";
  s.Get(model + "/ready", [state](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<const ModelRepository> hold;
    if (const ModelEntry* e = FindModel(state, req, res, &hold)) res.status = e->ready ? 200 : 400;
  });
  s.Get(model, [state](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<const ModelRepository> hold;
    const ModelEntry* e = FindModel(state, req, res, &hold);
    if (e == nullptr) return;
    if (!e->ready) {
      SendError(res, 400, absl::StrCat("model '", e->name, "' is not ready: ", e->error));
      return;
    }
    res.set_content(ModelMetadataJson(*e), kJson);
  });
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpFrontend>> HttpFrontend::Start(const ListenerConfig& listener,
                                                                   const ServerState* state) {
  auto server = std::make_unique<httplib::Server>();
  httplib::Server& s = *server;
  AddRoutes(s, state);
  // Unmatched routes and methods: httplib leaves status 404 and no body; give them the JSON error. (The
  // handler also sees our own 4xx responses; those carry a body already, or are empty by protocol.)
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty() && (res.status == 404 || res.status == 405)) {
      res.set_content(ErrorJson(absl::StrCat("no route for ", req.method, " ", req.path)), kJson);
    }
  });
  s.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    LOG_ERROR("http ", req.method, " ", req.path, ": internal error: ", what);
    SendError(res, 500, absl::StrCat("internal error: ", what));
  });
  auto bound = HttpListener::Start(std::move(server), listener, "http", kHttpThreads);
  if (!bound.ok()) return bound.status();
  return std::unique_ptr<HttpFrontend>(new HttpFrontend(*std::move(bound)));
}

}  // namespace coreserve
