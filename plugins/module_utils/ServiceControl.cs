// Copyright: configmgr.sql_upgrade contributors
// GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
//
// SERVICE_CONTROL_STOP sent once, through ControlService, with the Win32 error it answers. What
// System.ServiceProcess.ServiceController.Stop() does not give:
// - on .NET Framework, Stop() first stops every running dependent itself (and waits up to 30 s for each,
//   then throws System.ServiceProcess.TimeoutException), so a dependent started after the plan was made
//   would be stopped without a journal record. ControlService never stops dependents: the SCM answers
//   ERROR_DEPENDENT_SERVICES_RUNNING (1051) instead, which the executor reports by name;
// - Stop() wraps every failure in InvalidOperationException; here the caller gets the error code and
//   decides: 1062 (ERROR_SERVICE_NOT_ACTIVE: it stopped by itself since it was read) is done, 1061
//   (ERROR_SERVICE_CANNOT_ACCEPT_CTRL: a pending state) is waited out, 1052 (ERROR_INVALID_SERVICE_CONTROL)
//   and 5 (ERROR_ACCESS_DENIED) fail naming the service.
// Docs: ControlService (winsvc.h), OpenServiceW (SERVICE_STOP, SERVICE_QUERY_STATUS), System Error Codes.
// C# 5 (the compiler Add-Type uses on Windows PowerShell 5.1). No WMI.
using System;
using System.ComponentModel;
using System.Runtime.InteropServices;

//TypeAccelerator -Name ConfigMgr.SqlUpgrade.ServiceControl -TypeName ServiceControl

namespace ansible_collections.configmgr.sql_upgrade.plugins.module_utils.ServiceControl
{
    public static class ServiceControl
    {
        private const uint SC_MANAGER_CONNECT = 0x0001;
        private const uint SERVICE_QUERY_STATUS = 0x0004;
        private const uint SERVICE_STOP = 0x0020;
        private const uint SERVICE_CONTROL_STOP = 0x00000001;

        [StructLayout(LayoutKind.Sequential)]
        private struct SERVICE_STATUS
        {
            public uint dwServiceType;
            public uint dwCurrentState;
            public uint dwControlsAccepted;
            public uint dwWin32ExitCode;
            public uint dwServiceSpecificExitCode;
            public uint dwCheckPoint;
            public uint dwWaitHint;
        }

        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        private static extern IntPtr OpenSCManagerW(string machineName, string databaseName, uint desiredAccess);

        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        private static extern IntPtr OpenServiceW(IntPtr scManager, string serviceName, uint desiredAccess);

        [DllImport("advapi32.dll", SetLastError = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        private static extern bool ControlService(IntPtr service, uint control, ref SERVICE_STATUS status);

        [DllImport("advapi32.dll", SetLastError = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        private static extern bool CloseServiceHandle(IntPtr handle);

        /// <summary>Send SERVICE_CONTROL_STOP once. 0 when the SCM accepted it, else the Win32 error code
        /// (1051, 1052, 1061, 1062, 5, 1060 ...). Never stops a dependent.</summary>
        public static int Stop(string name)
        {
            IntPtr scm = OpenSCManagerW(null, null, SC_MANAGER_CONNECT);
            if (scm == IntPtr.Zero)
                return Marshal.GetLastWin32Error();
            try
            {
                IntPtr service = OpenServiceW(scm, name, SERVICE_STOP | SERVICE_QUERY_STATUS);
                if (service == IntPtr.Zero)
                    return Marshal.GetLastWin32Error();
                try
                {
                    SERVICE_STATUS status = new SERVICE_STATUS();
                    if (!ControlService(service, SERVICE_CONTROL_STOP, ref status))
                        return Marshal.GetLastWin32Error();
                    return 0;
                }
                finally
                {
                    CloseServiceHandle(service);
                }
            }
            finally
            {
                CloseServiceHandle(scm);
            }
        }

        /// <summary>"The requested control is not valid for this service (1052)": the system's message for a
        /// Win32 error code, with the code, as every failure of the executor names it.</summary>
        public static string Describe(int code)
        {
            return String.Format("{0} ({1})", new Win32Exception(code).Message, code);
        }
    }
}
