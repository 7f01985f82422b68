/// The web page (a placeholder until the web page lands).
public enum WebPage {
    public static let html = "<!doctype html><title>umsd</title><p>umsd: the web page is not here yet; the API is at /api."
}
