<%@ page contentType="application/json" import="java.security.*" %><%
    String d = request.getParameter("data");
    byte[] h = MessageDigest.getInstance("SHA-256").digest((d == null ? "" : d).getBytes("UTF-8"));
    StringBuilder sb = new StringBuilder();
    for (byte b : h) sb.append(String.format("%02x", b));
    out.print("{\"sha256\":\"" + sb + "\"}");
%>
