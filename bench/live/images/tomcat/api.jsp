<%@ page contentType="application/json" import="java.util.*,java.util.concurrent.*" %><%!
    // ngram-live-tomcat: an in-memory JSON API (items are name/qty pairs).
    static final ConcurrentSkipListMap<Integer, String[]> ITEMS = new ConcurrentSkipListMap<>();
    static final java.util.concurrent.atomic.AtomicInteger NEXT = new java.util.concurrent.atomic.AtomicInteger(1);
    static String q(String s) { return "\"" + (s == null ? "" : s.replace("\\", "\\\\").replace("\"", "\\\"")) + "\""; }
    static String json(int id, String[] it) { return "{\"id\":\"" + id + "\",\"name\":" + q(it[0]) + ",\"qty\":" + q(it[1]) + "}"; }
%><%
    String m = request.getMethod();
    String id = request.getParameter("id");
    if ("delete".equals(request.getParameter("op"))) {
        String[] gone = id == null ? null : ITEMS.remove(Integer.valueOf(id));
        response.setStatus(gone == null ? 404 : 200);
        out.print("{\"deleted\":" + (gone != null) + "}");
    } else if (m.equals("POST")) {
        int n = NEXT.getAndIncrement();
        String[] it = { request.getParameter("name"), request.getParameter("qty") };
        ITEMS.put(n, it);
        response.setStatus(201);
        out.print(json(n, it));
    } else if (id != null) {
        String[] it = ITEMS.get(Integer.valueOf(id));
        if (it == null) { response.setStatus(404); out.print("{\"error\":\"no such item\"}"); }
        else out.print(json(Integer.parseInt(id), it));
    } else {
        StringBuilder sb = new StringBuilder("[");
        for (Map.Entry<Integer, String[]> e : ITEMS.entrySet()) {
            if (sb.length() > 1) sb.append(',');
            sb.append(json(e.getKey(), e.getValue()));
        }
        out.print(sb.append(']'));
    }
%>
