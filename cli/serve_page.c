/* serve_page.c — the page raddino serve answers at "/": one static HTML file, no external
 * assets. It holds no data: everything is fetched from the JSON API with the token. */
const char serve_page_html[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>raddino</title></head>"
    "<body><p>raddino serve</p></body></html>\n";
