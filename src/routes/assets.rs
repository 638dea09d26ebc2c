//! The files a browser needs, compiled into the binary from `src/web/` (no
//! build step, no files to deploy): the client library at
//! `/client/matchd.js` with its declarations at `/client/matchd.d.ts`
//! (protocol 2, as the node speaks it), and the demo at `/`.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// One embedded file.
struct Asset {
    body: &'static str,
    content_type: &'static str,
}

const LIBRARY: Asset = Asset {
    body: include_str!("../web/matchd.js"),
    content_type: "text/javascript; charset=utf-8",
};
const DECLARATIONS: Asset = Asset {
    body: include_str!("../web/matchd.d.ts"),
    content_type: "application/typescript; charset=utf-8",
};
const DEMO_PAGE: Asset = Asset {
    body: include_str!("../web/index.html"),
    content_type: "text/html; charset=utf-8",
};
const DEMO_SCRIPT: Asset = Asset {
    body: include_str!("../web/demo.js"),
    content_type: "text/javascript; charset=utf-8",
};
const DEMO_STYLE: Asset = Asset {
    body: include_str!("../web/demo.css"),
    content_type: "text/css; charset=utf-8",
};

fn serve(asset: &'static Asset) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(asset.content_type)
        // The files change with the node's version: revalidate each time.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            "X-Matchd-Protocol",
            matchd_protocol::PROTOCOL_VERSION.to_string(),
        ))
        .body(asset.body)
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    let files: [(&str, &'static Asset); 5] = [
        ("/", &DEMO_PAGE),
        ("/client/matchd.js", &LIBRARY),
        ("/client/matchd.d.ts", &DECLARATIONS),
        ("/demo/demo.js", &DEMO_SCRIPT),
        ("/demo/demo.css", &DEMO_STYLE),
    ];
    for (path, asset) in files {
        cfg.service(web::resource(path).route(web::get().to(move || async move { serve(asset) })));
    }
}
