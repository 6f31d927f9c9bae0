<%@ page contentType="application/json" import="java.nio.file.*" %><%
    String name = Paths.get(request.getParameter("name") == null ? "upload.txt" : request.getParameter("name")).getFileName().toString();
    byte[] data = request.getInputStream().readAllBytes();
    Files.write(Paths.get("/var/lib/tomcat10/webapps/ROOT/uploads", name), data);
    response.setStatus(201);
    out.print("{\"name\":\"" + name + "\",\"bytes\":" + data.length + "}");
%>
