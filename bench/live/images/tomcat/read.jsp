<%@ page contentType="text/plain" import="java.nio.file.*" %><%
    // DELIBERATELY VULNERABLE (path traversal through ?name=; an attack target, never deploy).
    try {
        out.print(new String(Files.readAllBytes(Paths.get("/srv/data/" + request.getParameter("name")))));
    } catch (Exception e) {
        response.setStatus(404);
        out.print("not found: " + e);
    }
%>
