#include "server/http_frontend.h"

#include <httplib.h>

#include <future>
#include <memory>
#include <regex>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "runtime/status_macros.h"
#include "server/http_infer.h"
#include "server/model_control.h"
#include "server/tfs_rest.h"
#include "server/tls.h"
#include "server/triton_config.h"
#include "server/json_writer.h"
#include "server/log.h"
#include "server/v2_datatype.h"
#include "server/version.h"

namespace coreserve {
namespace {

constexpr char kJson[] = "application/json";
// Connection threads of the REST listener, at most. cpp-httplib gives each keep-alive connection a thread while
// it is open, and an inference request holds its thread until the runner answers, so every concurrent client
// needs one; the listener makes them as connections arrive (server/http_listener.cc). Compute never runs on
// them; an idle thread costs its stack's address space and a few pages.
constexpr int kHttpThreads = 1024;

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
  for (const char* e : kServerExtensions) w.String(e);
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
  for (int64_t v : e.served) w.String(std::to_string(v).c_str());
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

// Adds routes to the httplib server and remembers each pattern's methods, so that a request for a known path with
// another method can be answered 405 with an Allow header (httplib answers every unmatched request 404).
class RouteTable {
 public:
  explicit RouteTable(httplib::Server& s) : s_(s) {}

  template <typename Handler>
  void Get(const std::string& pattern, Handler handler) {
    routes_.push_back({std::regex(pattern), "GET, HEAD"});  // httplib answers HEAD with the GET handler
    s_.Get(pattern, std::move(handler));
  }
  template <typename Handler>
  void Post(const std::string& pattern, Handler handler) {
    routes_.push_back({std::regex(pattern), "POST"});
    s_.Post(pattern, std::move(handler));
  }

  // The methods served on `path` ("GET, HEAD, POST"), empty when no route matches it. Matched as httplib does.
  std::string Allowed(const std::string& path) const {
    std::string allowed;
    for (const auto& [pattern, methods] : routes_) {
      if (std::regex_match(path, pattern) && allowed.find(methods) == std::string::npos) {
        absl::StrAppend(&allowed, allowed.empty() ? "" : ", ", methods);
      }
    }
    return allowed;
  }

 private:
  httplib::Server& s_;
  std::vector<std::pair<std::regex, std::string>> routes_;
};

// Queues the request on the model's runner and waits for its result (httplib answers on the thread that read
// the request; the compute runs on the runner's threads).
absl::StatusOr<NamedTensors> RunAndWait(const ModelEntry& e, InferRequest request) {
  std::promise<absl::StatusOr<NamedTensors>> promise;
  std::future<absl::StatusOr<NamedTensors>> future = promise.get_future();
  e.runner->Submit(std::move(request),
                   [&promise](absl::StatusOr<NamedTensors> result) { promise.set_value(std::move(result)); });
  return future.get();
}

// The model named by a /v2/models/{name}[/versions/{version}] (or /v1/models/...) route, or an error response
// already written.
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

void SendStatus(httplib::Response& res, const absl::Status& status) {
  SendError(res, HttpStatusFor(status), std::string(status.message()));
}

// For an inference route: reads the body into *body (through the content reader: httplib's own reading would
// refuse (413) any body over 8 KB sent as application/x-www-form-urlencoded, which is what `curl -d` sends — the
// Debian library is built with that limit — while the reader is bounded by the payload limit like any body),
// and returns the model if it can take requests, else writes the error and returns null.
const ModelEntry* InferenceTarget(const ServerState* state, const httplib::Request& req, httplib::Response& res,
                                  const httplib::ContentReader& content_reader, std::string* body,
                                  std::shared_ptr<const ModelRepository>* hold) {
  const bool read = content_reader([body](const char* data, std::size_t length) {
    body->append(data, length);
    return true;
  });
  if (!read) {  // httplib set 413 when the body exceeds the payload limit; else the client went away mid-body
    SendError(res, res.status == 413 ? 413 : 400,
              res.status == 413 ? "the request body is larger than max_request_bytes" : "the request body was cut short");
    return nullptr;
  }
  const ModelEntry* e = FindModel(state, req, res, hold);
  if (e == nullptr) return nullptr;
  if (state->shutting_down()) {
    SendError(res, 503, "the server is shutting down");
    return nullptr;
  }
  if (!e->ready) {
    SendError(res, 503, absl::StrCat("model '", e->name, "' is not ready: ", e->ClientError()));
    return nullptr;
  }
  return e;
}

std::string RepositoryIndexJson(const std::vector<ModelControl::IndexEntry>& index, bool ready_only) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartArray();
  for (const ModelControl::IndexEntry& e : index) {
    if (ready_only && e.state != "READY") continue;
    w.StartObject();
    w.Key("name");
    WriteString(w, e.name);
    if (!e.version.empty()) {
      w.Key("version");
      WriteString(w, e.version);
    }
    w.Key("state");
    WriteString(w, e.state);
    w.Key("reason");
    WriteString(w, e.reason);
    w.EndObject();
  }
  w.EndArray();
  return buffer.GetString();
}

// Whether the repository API request may go on (ModelControl::Authorize); if not, writes the 401 (with the
// challenge RFC 6750 asks for) or 503 and logs the refusal, never the header's value.
bool Authorized(const ModelControl* control, const httplib::Request& req, httplib::Response& res) {
  const absl::Status status = control->Authorize(req.get_header_value("Authorization"));
  if (status.ok()) return true;
  LOG_WARNING("http ", req.method, " ", req.path, " from ", req.remote_addr, ": refused: ", status.message());
  if (status.code() == absl::StatusCode::kUnauthenticated) res.set_header("WWW-Authenticate", "Bearer realm=\"coreserve\"");
  SendStatus(res, status);
  return false;
}

// The repository extension: index, load, unload (server/model_control.h). A load runs on this handler's thread
// while every model keeps serving on its own runner.
void AddRepositoryRoutes(RouteTable& s, ModelControl* control) {
  s.Post("/v2/repository/index", [control](const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(control, req, res)) return;
    bool ready_only = false;
    if (!req.body.empty()) {
      rapidjson::Document doc;
      if (absl::Status parsed = ParseJsonObject(req.body, &doc); !parsed.ok()) {
        return SendError(res, 400, absl::StrCat("malformed index request: ", parsed.message()));
      }
      if (doc.HasMember("ready")) {
        if (!doc["ready"].IsBool()) return SendError(res, 400, "'ready' must be true or false");
        ready_only = doc["ready"].GetBool();
      }
    }
    res.set_content(RepositoryIndexJson(control->Index(), ready_only), kJson);
  });
  const std::string repo_model = R"(/v2/repository/models/([^/]+))";
  s.Post(repo_model + "/load", [control](const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(control, req, res)) return;
    const absl::Status status = control->Load(req.matches[1].str());
    if (!status.ok()) return SendStatus(res, status);
    res.set_content("{}", kJson);
  });
  s.Post(repo_model + "/unload", [control](const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(control, req, res)) return;
    const absl::Status status = control->Unload(req.matches[1].str());
    if (!status.ok()) return SendStatus(res, status);
    res.set_content("{}", kJson);
  });
}

void AddRoutes(RouteTable& s, const ServerState* state) {
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

  // Triton's statistics extension; registered before the model routes, which would take "stats" for a name.
  s.Get("/v2/models/stats", [state](const httplib::Request&, httplib::Response& res) {
    const auto repo = state->repository();
    if (repo == nullptr) return SendError(res, 503, "the model repository is still loading");
    inference::ModelStatisticsResponse stats;
    for (const ModelEntry& e : repo->models()) FillModelStatistics(e, stats.add_model_stats());
    res.set_content(ModelStatsJson(stats), kJson);
  });
  const std::string model = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";
  s.Get(model + "/stats", [state](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<const ModelRepository> hold;
    const ModelEntry* e = FindModel(state, req, res, &hold);
    if (e == nullptr) return;
    inference::ModelStatisticsResponse stats;
    FillModelStatistics(*e, stats.add_model_stats());
    res.set_content(ModelStatsJson(stats), kJson);
  });
  s.Get(model + "/ready", [state](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<const ModelRepository> hold;
    if (const ModelEntry* e = FindModel(state, req, res, &hold)) res.status = e->ready ? 200 : 400;
  });
  // Inference: the handler parses, queues the request on the model's runner and waits for its result; the
  // compute runs on the runner's threads.
  s.Post(model + "/infer", [state](const httplib::Request& req, httplib::Response& res,
                                   const httplib::ContentReader& content_reader) {
    std::string request_body;
    std::shared_ptr<const ModelRepository> hold;
    const ModelEntry* e = InferenceTarget(state, req, res, content_reader, &request_body, &hold);
    if (e == nullptr) return;
    int64_t header_length = -1;
    if (req.has_header("Inference-Header-Content-Length") &&
        (!absl::SimpleAtoi(req.get_header_value("Inference-Header-Content-Length"), &header_length) ||
         header_length < 0)) {
      return SendError(res, 400, "Inference-Header-Content-Length must be a non-negative integer");
    }
    auto parsed = ParseHttpInferRequest(request_body, header_length);
    if (!parsed.ok()) return SendStatus(res, parsed.status());
    absl::StatusOr<NamedTensors> result = RunAndWait(*e, std::move(parsed->request));
    if (!result.ok()) return SendStatus(res, result.status());
    std::size_t json_length = 0;
    std::string body = HttpInferResponse(e->name, e->version, *parsed, *result, &json_length);
    if (json_length < body.size()) {
      res.set_header("Inference-Header-Content-Length", std::to_string(json_length));
      res.set_content(std::move(body), "application/octet-stream");
    } else {
      res.set_content(std::move(body), kJson);
    }
  });
  // TensorFlow Serving's REST API (server/tfs_rest.h).
  const std::string tfs_model = R"(/v1/models/([^/:]+)(?:/versions/([^/:]+))?)";
  s.Post(tfs_model + ":predict", [state](const httplib::Request& req, httplib::Response& res,
                                         const httplib::ContentReader& content_reader) {
    std::string request_body;
    std::shared_ptr<const ModelRepository> hold;
    const ModelEntry* e = InferenceTarget(state, req, res, content_reader, &request_body, &hold);
    if (e == nullptr) return;
    auto parsed = ParseTfsPredict(request_body, e->info.inputs);
    if (!parsed.ok()) return SendStatus(res, parsed.status());
    absl::StatusOr<NamedTensors> result = RunAndWait(*e, std::move(parsed->request));
    if (!result.ok()) return SendStatus(res, result.status());
    res.set_content(TfsPredictResponse(*result, parsed->rows), kJson);
  });
  s.Get(tfs_model + "/metadata", [state](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<const ModelRepository> hold;
    if (const ModelEntry* e = FindModel(state, req, res, &hold)) res.set_content(TfsMetadataJson(*e), kJson);
  });
  s.Get(tfs_model, [state](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<const ModelRepository> hold;
    if (const ModelEntry* e = FindModel(state, req, res, &hold)) {
      const bool all_versions = req.matches.size() <= 2 || req.matches[2].str().empty();
      res.set_content(TfsStatusJson(*e, all_versions), kJson);
    }
  });

  s.Get(model + "/config", [state](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<const ModelRepository> hold;
    const ModelEntry* e = FindModel(state, req, res, &hold);
    if (e == nullptr) return;
    if (!e->ready) return SendError(res, 400, absl::StrCat("model '", e->name, "' is not ready: ", e->ClientError()));
    inference::ModelConfig config;
    FillModelConfig(*e, &config);
    res.set_content(ModelConfigJson(config), kJson);
  });
  s.Get(model, [state](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<const ModelRepository> hold;
    const ModelEntry* e = FindModel(state, req, res, &hold);
    if (e == nullptr) return;
    if (!e->ready) {
      SendError(res, 400, absl::StrCat("model '", e->name, "' is not ready: ", e->ClientError()));
      return;
    }
    res.set_content(ModelMetadataJson(*e), kJson);
  });
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpFrontend>> HttpFrontend::Start(const ListenerConfig& listener,
                                                                   int64_t max_request_bytes, const ServerState* state,
                                                                   ModelControl* control) {
  ASSIGN_OR_RETURN(std::unique_ptr<httplib::Server> server, MakeHttpServer(listener, "http"));
  httplib::Server& s = *server;
  auto routes = std::make_shared<RouteTable>(s);
  AddRoutes(*routes, state);
  AddRepositoryRoutes(*routes, control);
  s.set_payload_max_length(static_cast<std::size_t>(max_request_bytes));
  // A Content-Length over the limit is answered before any of the body is read (httplib's own check would first
  // read and discard the whole announced body), and the connection is closed, since the body is still unread.
  s.set_pre_routing_handler([max_request_bytes](const httplib::Request& req, httplib::Response& res) {
    int64_t length = 0;
    if (req.has_header("Content-Length") &&
        absl::SimpleAtoi(req.get_header_value("Content-Length"), &length) && length > max_request_bytes) {
      SendError(res, 413, absl::StrCat("the request body (", length, " bytes) is larger than max_request_bytes (",
                                       max_request_bytes, ")"));
      res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Unmatched requests: httplib leaves status 404 and no body. A known path asked with another method gets 405
  // and the methods it takes (RFC 9110); anything else the JSON 404. (The handler also sees our own 4xx
  // responses; those carry a body already, or are empty by protocol.)
  s.set_error_handler([routes](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || res.status != 404) return;
    const std::string allowed = routes->Allowed(req.path);
    if (allowed.empty()) {
      res.set_content(ErrorJson(absl::StrCat("no route for ", req.method, " ", req.path)), kJson);
      return;
    }
    res.status = 405;
    res.set_header("Allow", allowed);
    res.set_content(ErrorJson(absl::StrCat("method ", req.method, " is not allowed on ", req.path, " (allowed: ",
                                           allowed, ")")), kJson);
  });
  // While shutting down, every answer closes its connection, so no client sends another request on it that the
  // listener's stop could cut off (Server::Shutdown drains the connections before stopping).
  s.set_post_routing_handler([state](const httplib::Request&, httplib::Response& res) {
    if (state->shutting_down()) res.set_header("Connection", "close");
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
